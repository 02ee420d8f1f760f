package lambdaemu

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// memoryPoll is how often the watcher reads the process's resident memory.
const memoryPoll = 5 * time.Millisecond

// memoryWatch follows a process's resident memory in /proc and calls onOver
// once it exceeds limitKB. Between two reads the process may go over and
// back; its peak (VmHWM) still shows it, and the emulator reads that at the
// end of each invocation.
type memoryWatch struct {
	pid     int
	limitKB int64
	onOver  func()
	quit    chan struct{}
	done    chan struct{}

	mu     sync.Mutex
	peak   int64 // highest VmHWM (or VmRSS) seen, in kB
	exceed bool
}

func watchMemory(pid int, limitKB int64, onOver func()) *memoryWatch {
	m := &memoryWatch{pid: pid, limitKB: limitKB, onOver: onOver, quit: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m
}

func (m *memoryWatch) run() {
	defer close(m.done)
	t := time.NewTicker(memoryPoll)
	defer t.Stop()
	for {
		if m.sample() {
			m.onOver()
		}
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
	}
}

// sample reads the process's memory once; it reports whether the process
// just went over its limit.
func (m *memoryWatch) sample() bool {
	rss, hwm, err := ProcMemory(m.pid)
	if err != nil {
		return false // the process is gone, or not yet there
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peak = max(m.peak, rss, hwm)
	if !m.exceed && m.peak > m.limitKB {
		m.exceed = true
		return true
	}
	return false
}

// peakKB reads the process once more, when it still runs, and returns the
// highest resident memory seen.
func (m *memoryWatch) peakKB() int64 {
	if m.sample() {
		m.onOver()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// over reports whether the process went over its limit.
func (m *memoryWatch) over() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exceed
}

// stop ends the watch (the process has exited).
func (m *memoryWatch) stop() {
	select {
	case <-m.quit:
	default:
		close(m.quit)
	}
	<-m.done
}

// ProcMemory returns a process's resident memory now (VmRSS) and its peak
// since it started (VmHWM), in kB, from /proc/<pid>/status.
func ProcMemory(pid int) (rssKB, peakKB int64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		var into *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			into = &rssKB
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			into = &peakKB
		default:
			continue
		}
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		if *into, err = strconv.ParseInt(string(f[1]), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %q: %w", pid, line, err)
		}
		found++
	}
	if found < 2 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS and VmHWM (an exited process)", pid)
	}
	return rssKB, peakKB, nil
}
