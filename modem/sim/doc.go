// Package sim owns the simulated AT modem: one modem state (identity, SIM,
// registration, PDP contexts, bearer) answering the AT dialogue of a real
// cellular modem over any number of transports at once (pseudo-terminals
// for the AT backend, abstract Unix sockets for a real ModemManager), with
// runtime fault knobs and unplug/replug.
//
// It is used by the tests of every backend, by `make demo`, by a real
// ModemManager started in test mode, and standalone through Main
// (`simproof sim`).
//
// The answers follow ModemManager 1.20's view of a generic 3GPP modem
// (testdata/modemmanager-1.20-generic-at-dialogue.txt): every information
// line framed as "\r\n<line>\r\n", then "\r\nOK\r\n"; echo on until ATE0;
// every command it does not know answered at once with +CME ERROR: 4 (ERROR
// under AT+CMEE=0), so a client never waits for a timeout.
//
// Per-port settings (echo, verbose, CMEE, the +CREG/+CGREG/+CEREG URC mode,
// +COPS format, +CGEREP, +CMER, +CSCS, +CGPIAF) belong to one port. An
// abstract-socket port starts from the defaults on each connection, as
// ModemManager expects when it reopens a port; a pty keeps them, like a
// real tty, until Unplug. Everything else is the modem's, shared by every
// port.
//
// Commands live in tables of name → handler over the modem state: V.250
// basics in v250.go, generic 3GPP (27.007) in gen3gpp.go and gen3gpp_data.go.
// A vendor dialogue is another table merged with addCommands, chosen with
// Modem.UseVendor (which also sets the vendor's +CGMI/+CGMM); its handlers see the modem state (c.st),
// the port (c.s), and may raise URCs with m.broadcast, which reach the
// calling port after its answer (e.g. %IPDPACT: <cid>,1,0 after OK).
package sim
