package peer_test

import (
	"context"
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
