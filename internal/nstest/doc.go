// Package nstest is the network-namespace harness for tests: it creates
// uniquely named namespaces (prefix "sp-"), veth pairs between them,
// addresses and routes, runs code or subprocesses inside a namespace, counts
// packets on an interface, and builds the device/carrier/ISP/server topology
// of spec/testing.md. Everything it creates is removed with t.Cleanup, even
// when the test fails. It never touches the host namespace's interfaces or
// routes: veths are created inside a test namespace and their peer is moved
// straight into another one.
//
// The API exists on Linux only; callers put their namespace tests in
// _linux_test.go files and call RequireRoot first, which skips (with the
// reason) when the test is not root or namespaces cannot be created.
package nstest
