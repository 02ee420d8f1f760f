// Package lambdaemu runs a Lambda function's bootstrap on this machine the
// way Lambda runs it on provided.al2023: as a child process in a clean
// environment that holds only the function's variables and the ones Lambda
// sets (AWS_LAMBDA_*, AWS_REGION, credentials, _HANDLER, ...), talking to an
// emulator of the Lambda Runtime API (version 2018-06-01: invocation/next,
// invocation/{id}/response, invocation/{id}/error and init/error) on a
// local port.
//
// It keeps Lambda's rules:
//   - one execution environment serves one invocation at a time and is
//     reused (warm) by the next; between invocations the process is frozen
//     (SIGSTOP), as Lambda freezes it;
//   - the init phase lasts from the start of the process to its first call
//     of invocation/next (Init Duration), at most 10 s;
//   - the function's Timeout is each invocation's deadline (the
//     Lambda-Runtime-Deadline-Ms header); when it passes, the process is
//     killed and the next invocation starts a new one (a cold start);
//   - a process that exits or crashes is replaced the same way;
//   - MemorySize is enforced: the process's resident memory, read from
//     /proc/<pid>/status (VmRSS every few milliseconds, and its peak VmHWM at
//     the end of each invocation), may not exceed it, or the process is
//     killed and the invocation fails with Runtime.OutOfMemory;
//   - events must be JSON and at most 6 MB, responses at most 6 MB
//     (Function.ResponseSizeTooLarge).
//
// Each invocation writes START, END and REPORT lines beside the function's
// own output, as Lambda writes them to CloudWatch Logs.
//
// Not emulated: the arm64 architecture (build the bootstrap for this
// machine), the read-only file system (only /tmp is writable in Lambda),
// the CPU share that grows with MemorySize, extensions and the Extensions
// and Telemetry APIs, response streaming, and the memory of child processes
// of the bootstrap (only the bootstrap's own is counted). The package is
// for local use: no Lambda binary may import it.
package lambdaemu
