package main

import (
	"fmt"

	"github.com/machport/machport/bootstrap"
)

// namespaceHint says where the emulated namespace lives, which both sides must share.
func namespaceHint() string {
	dir, err := bootstrap.Dir()
	if err != nil {
		dir = err.Error()
	}
	return fmt.Sprintf("on Linux, client and server must share %s (here %s)", bootstrap.EnvDir, dir)
}
