package extract

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// retryRounds is how many times a request that used up its RetryMax
// retries is tried again later in the same run, while the run's retry
// budget lasts: under a harsh fault mix one page can be unlucky that many
// times in a row without the API being down.
const retryRounds = 3

// attemptsSpent is the error of a request that used up its retries.
type attemptsSpent struct {
	attempts int
	err      error
}

func (e *attemptsSpent) Error() string {
	return fmt.Sprintf("giving up after %d attempts: %v", e.attempts, e.err)
}

func (e *attemptsSpent) Unwrap() error { return e.err }

// fetch GETs url until check accepts the body, retrying what is worth
// retrying: network errors, timeouts, bodies cut short or not JSON, 408,
// 429 and 5xx. A request that used up its retries waits a longer backoff,
// letting the other requests go first, and starts a new round of attempts
// (up to retryRounds) while the run's retry budget lasts. It returns the
// body and when it was received.
func (r *run) fetch(ctx context.Context, url string, check func([]byte) error) ([]byte, time.Time, error) {
	total := 0
	for attempt, round := 0, 1; ; attempt++ {
		total++
		if err := r.waitGate(ctx); err != nil {
			return nil, time.Time{}, err
		}
		if !acquire(ctx, r.httpSem) {
			return nil, time.Time{}, context.Cause(ctx)
		}
		r.requests.Add(1)
		actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		body, err := r.api.Get(actx, url)
		timedOut := err != nil && actx.Err() != nil && ctx.Err() == nil
		cancel()
		<-r.httpSem
		if err == nil {
			fetchedAt := r.now().UTC()
			r.bytesFetched.Add(int64(len(body)))
			if err = check(body); err == nil {
				return body, fetchedAt, nil
			}
			if !errors.Is(err, errInvalidJSON) {
				return nil, time.Time{}, fmt.Errorf("validating %s: %w", url, err)
			}
			err = fmt.Errorf("GET %s: %w", url, err)
		}
		if timedOut {
			err = fmt.Errorf("no complete answer within %s: %w", r.cfg.RequestTimeout, err)
		}
		if ctx.Err() != nil {
			return nil, time.Time{}, err
		}
		delay, err := r.retryDelay(err, attempt)
		var spent *attemptsSpent
		switch {
		case errors.As(err, &spent) && r.cfg.RetryMax > 0 && round < retryRounds && r.takeRetry():
			round, attempt = round+1, -1
			delay = backoff(r.cfg.RetryMax+round, r.cfg.BackoffBase, r.cfg.BackoffMax, 0.5+r.rand()/2)
			r.log.InfoContext(ctx, "request used up its retries: trying it again later in the run", "url", url,
				"round", round, "delayMs", delay.Milliseconds(), "error", spent.err.Error())
		case errors.As(err, &spent) && round > 1:
			return nil, time.Time{}, fmt.Errorf("giving up after %d attempts in %d rounds: %w", total, round, spent.err)
		case err != nil:
			return nil, time.Time{}, err
		default:
			r.log.DebugContext(ctx, "retrying", "url", url, "attempt", attempt+1, "delayMs", delay.Milliseconds())
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, time.Time{}, err
		}
	}
}

// retryDelay decides whether a failed attempt (attempt 0 is the first) is
// retried, and after how long; it returns the error to give up with
// otherwise. A Retry-After also holds back every other request.
func (r *run) retryDelay(err error, attempt int) (time.Duration, error) {
	delay := backoff(attempt, r.cfg.BackoffBase, r.cfg.BackoffMax, r.rand())
	var se *rickmorty.StatusError
	status := errors.As(err, &se)
	if status && !se.Retryable() || errors.Is(err, rickmorty.ErrTooLarge) {
		return 0, err
	}
	throttled := false
	if status && se.RetryAfter != "" {
		if d, ok := rickmorty.ParseRetryAfter(se.RetryAfter, r.now()); ok {
			if d > r.cfg.MaxRetryAfter {
				return 0, fmt.Errorf("server asked to wait %s (Retry-After: %s), more than the %s honoured: %w", d, se.RetryAfter, r.cfg.MaxRetryAfter, err)
			}
			delay, throttled = d, true
		}
	}
	if attempt >= r.cfg.RetryMax {
		return 0, &attemptsSpent{attempts: attempt + 1, err: err}
	}
	if !r.takeRetry() {
		return 0, fmt.Errorf("retry budget of %d for the run is spent: %w", r.cfg.RetryBudget, err)
	}
	if throttled {
		r.hold(delay)
	}
	return delay, nil
}

// takeRetry takes one retry from the run's budget.
func (r *run) takeRetry() bool {
	for {
		n := r.retries.Load()
		if n >= int64(r.cfg.RetryBudget) {
			return false
		}
		if r.retries.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// hold keeps every request from starting for d.
func (r *run) hold(d time.Duration) {
	until := time.Now().Add(d)
	r.gateMu.Lock()
	if until.After(r.notBefore) {
		r.notBefore = until
	}
	r.gateMu.Unlock()
}

// waitGate waits until requests may start again.
func (r *run) waitGate(ctx context.Context) error {
	for {
		r.gateMu.Lock()
		d := time.Until(r.notBefore)
		r.gateMu.Unlock()
		if d <= 0 {
			return ctx.Err()
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// backoff is "full jitter" exponential backoff: a uniform draw u in [0, 1)
// of a ceiling that doubles from base with each attempt, up to max.
func backoff(attempt int, base, max time.Duration, u float64) time.Duration {
	ceiling := max
	if attempt < 62 && base <= max>>attempt {
		ceiling = base << attempt
	}
	return time.Duration(u * float64(ceiling))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
