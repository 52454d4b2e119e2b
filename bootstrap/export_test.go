package bootstrap

import (
	"context"

	"github.com/machport/machport/mach"
)

// ReplaceLookUp makes the namespace answer every look-up with what answer gives, until restore
// is called: for tests of what LookUp does with the right a namespace hands out.
func ReplaceLookUp(answer func(name string) (*mach.SendRight, error)) (restore func()) {
	old := ns
	ns = fixedLookUp{namespace: old, answer: answer}
	return func() { ns = old }
}

type fixedLookUp struct {
	namespace
	answer func(name string) (*mach.SendRight, error)
}

func (f fixedLookUp) lookUp(_ context.Context, _, name string, _ int) (*mach.SendRight, error) {
	return f.answer(name)
}
