// Command bench is simproof's measurement harness (`make bench`, or
// `go run ./bench` as root). It builds spec/testing.md's namespace bench
// with a userspace layer-2 delay line spliced into every wwan link (30 ms
// each way) and into the device's eth0 link (10 ms each way, the path of the
// provider API calls), runs the daemon core on it against the provider
// emulator, and writes BENCHMARKS.md: check latency against the round-trip
// lower bound of each flow and against a curl script written the way
// integrators do it today, a modem array of 8, 16 and 32 simulated modems
// checked at once (with the operator's count of cross-modem leaks), the
// footprint of a real simproofd process (binary size, resident memory, idle
// CPU), and the socket API's throughput under load.
//
// It needs root (namespaces, veths, AF_PACKET sockets) and refuses politely
// otherwise. Everything it creates lives in namespaces named "sp-…" that it
// removes on exit, SIGINT and SIGTERM included; the host's own interfaces and
// routes are never touched.
//
// `bench delayline` is the delay line itself, run by the harness as a child
// process inside the delay namespace so its CPU time can be read on its own.
package main
