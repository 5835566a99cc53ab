package at

import (
	"io"

	"go.bug.st/serial"
)

// OpenSerial opens a serial port in raw 8N1 mode at baud (115200 if zero).
func OpenSerial(device string, baud int) (io.ReadWriteCloser, error) {
	if baud <= 0 {
		baud = 115200
	}
	p, err := serial.Open(device, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, err
	}
	return p, nil
}
