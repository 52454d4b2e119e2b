// Command publiconlyprog uses every library package, so that its darwin build links all of their
// code: TestPublicOnlyBinaryHasNoPrivateNames builds it with and without -tags
// machport_publiconly and looks for the private symbols' names in the binary.
package main

import (
	"context"
	"fmt"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/peer"
	"github.com/machport/machport/sandboxcheck"
)

func main() {
	ctx := context.Background()
	fmt.Println(mach.NewPort(mach.PortOptions{}))
	fmt.Println(bootstrap.LookUp(ctx, "com.example.x"))
	fmt.Println(sandboxcheck.ApplicationGroups())
	fmt.Println(sandboxcheck.Allowed(sandboxcheck.MachRegister, "com.example.x"))
	fmt.Println(cfmessageport.Dial(ctx, "com.example.x"))
	fmt.Println(peer.TokenForPID(1))
}
