package cfport_test

import (
	"fmt"
	"time"

	"github.com/machport/machport/internal/cfport"
)

func Example() {
	// A CoreFoundation echo service and a CoreFoundation client of it (on macOS only).
	local, err := cfport.CreateLocal("com.example.echo", func(msgid int32, data []byte) []byte {
		return data
	}, nil)
	if err != nil {
		fmt.Println("no CoreFoundation here:", err != nil)
		return
	}
	defer local.Close()
	remote, err := cfport.CreateRemote("com.example.echo", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer remote.Close()
	reply, status := remote.Request(1, []byte("hello"), 5*time.Second)
	fmt.Println(string(reply), status)
}
