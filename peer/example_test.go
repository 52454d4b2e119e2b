package peer_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/peer"
)

// A client that trusts only a server run by its own user from one executable: a squatter on the
// name fails its first reply.
func Example() {
	req, err := peer.New(peer.UID(uint32(os.Geteuid())), peer.Executable("/usr/local/libexec/helper"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer req.Close()
	ctx := context.Background()
	remote, err := cfmessageport.DialWithOptions(ctx, "com.example.helper", &cfmessageport.DialOptions{Require: req})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer remote.Close()
	if _, err := remote.Request(ctx, 1, nil); err != nil {
		fmt.Println(err) // errors.Is(err, cfmessageport.ErrPeerRejected) for a squatter
	}
}

// A requirement from text, as machping's --require takes it; an expression that does not parse
// names the bad item.
func ExampleParse() {
	req, err := peer.Parse("exe=/usr/local/libexec/helper; uid=0,501")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer req.Close()
	fmt.Println(req)
	fmt.Println(req.Expr())

	_, err = peer.Parse("uid=501; user=root")
	fmt.Println(err, errors.Is(err, peer.ErrInvalidRequirement))
	// Output:
	// uid in [0 501] and executable == "/usr/local/libexec/helper"
	// uid=0,501; exe=/usr/local/libexec/helper
	// peer: invalid requirement expression: "user=root": unknown key "user": use uid, gid, pid, exe or cs true
}
