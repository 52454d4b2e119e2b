package appgroup_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/examples/appgroup"
	"github.com/machport/machport/sandboxcheck"
)

// upper answers with the request's data in upper case.
type upper struct{}

func (upper) Handle(_ int32, data []byte) ([]byte, error) { return bytes.ToUpper(data), nil }

// The app and its extension each declare their application group, from their entitlements; one
// serves a name inside the group and the other calls it. Here both are one process; in an app
// they are two (see README.md). A name outside the group is refused with 1100.
func Example() {
	if err := appgroup.SetGroups("group.com.example.app"); err != nil {
		fmt.Println(err)
		return
	}
	defer sandboxcheck.ResetApplicationGroups() // only for this example: leave the emulated sandbox

	name, err := appgroup.Name("group.com.example.app", "echo")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := appgroup.Serve(name, upper{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	reply, err := appgroup.Call(name, 1, []byte("hello from the extension"), 0)
	fmt.Println(string(reply), err)

	_, err = appgroup.Serve("com.example.app.echo", upper{})
	fmt.Println(errors.Is(err, bootstrap.ErrNotPrivileged))
	// Output:
	// HELLO FROM THE EXTENSION <nil>
	// true
}
