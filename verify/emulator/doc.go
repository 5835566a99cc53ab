// Package emulator plays the IDlayr PhoneCheck API, the PlasGate IP
// Verification API and a mobile operator, for tests and the demo. It is the
// contract the verify providers are tested against; README.md in this
// directory describes every endpoint, chain, error and fault knob.
package emulator
