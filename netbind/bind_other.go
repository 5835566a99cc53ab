//go:build !linux

package netbind

import (
	"context"
	"errors"
	"fmt"
)

type record struct{}

// Apply needs Linux netlink.
func (b *Binder) Apply(ctx context.Context, c Config) (Applied, error) {
	return Applied{Interface: c.Interface}, fmt.Errorf("apply %s: %w: netbind needs Linux", c.Interface, errors.ErrUnsupported)
}

// Remove needs Linux netlink.
func (b *Binder) Remove(ctx context.Context, a Applied) error {
	return fmt.Errorf("remove %s: %w: netbind needs Linux", a.Interface, errors.ErrUnsupported)
}
