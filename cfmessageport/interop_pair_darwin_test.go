//go:build darwin && !ios

// Pairing with peers that use nothing but CoreFoundation's CFMessagePort calls (the names
// handshake), in both roles. They run on macOS runners only; here they are compiled for darwin.

package cfmessageport_test

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/cfport"
	"github.com/machport/machport/internal/testproc"
	"github.com/stretchr/testify/require"
)

func init() {
	extraRoles["cfpairclient"] = runCFPairClient
	extraRoles["cfpairserver"] = runCFPairServer
}

// cfPairEcho answers echo requests and, for msgPairStart, makes that many requests back over
// remote with CF's client, reporting with msgPairDone, as pairEcho does for Go peers.
func cfPairEcho(remote func() *cfport.Remote) cfport.Handler {
	echo := cfEcho()
	return func(msgid int32, data []byte) []byte {
		if msgid != msgPairStart {
			return echo(msgid, data)
		}
		n, _ := strconv.Atoi(string(data))
		go func() {
			r := remote()
			result := fmt.Sprintf("ok %d", n)
			for i := range n {
				payload := []byte(strconv.Itoa(i))
				got, status := r.Request(msgEcho, payload, 10*time.Second)
				if status != cfport.Success || string(got) != string(payload) {
					result = fmt.Sprintf("fail: request %d: %v %q", i, status, got)
					break
				}
			}
			r.Send(msgPairDone, []byte(result), 10*time.Second)
		}()
		return nil
	}
}

// runCFPairClient pairs with the Go service name the way an Objective-C client would: it serves
// a local port of its own, sends its name with PairMsgID, and calls the name in the reply.
func runCFPairClient(service string) error {
	localName := fmt.Sprintf("%s.cfpeer.%d", service, os.Getpid())
	var toServer atomic.Pointer[cfport.Remote]
	local, err := cfport.CreateLocal(localName, cfPairEcho(toServer.Load), nil)
	if err != nil {
		return err
	}
	defer local.Close()
	hello, err := cfport.CreateRemote(service, nil)
	if err != nil {
		return err
	}
	defer hello.Close()
	reply, status := hello.Request(cfmessageport.PairMsgID, []byte(localName), 10*time.Second)
	if status != cfport.Success || len(reply) == 0 {
		return fmt.Errorf("the handshake: %v %q", status, reply)
	}
	remote, err := cfport.CreateRemote(string(reply), nil)
	if err != nil {
		return err
	}
	defer remote.Close()
	toServer.Store(remote)
	got, status := remote.Request(msgEcho, []byte("to the Go server"), 10*time.Second)
	fmt.Printf("paired %s %v %q\n", localName, status, got)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// runCFPairServer serves service with CF and pairs by names as an Objective-C server would: for
// a PairMsgID request it calls the client's name and serves a new local port, whose name it
// answers.
func runCFPairServer(service string) error {
	var toClient atomic.Pointer[cfport.Remote]
	var conns []*cfport.Local // touched only by the service's serial queue, then by the defer
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	handler := func(msgid int32, data []byte) []byte {
		if msgid != cfmessageport.PairMsgID {
			return cfEcho()(msgid, data)
		}
		r, err := cfport.CreateRemote(string(data), nil)
		if err != nil {
			return nil
		}
		toClient.Store(r)
		connName := fmt.Sprintf("%s.cfconn.%d", service, len(conns))
		local, err := cfport.CreateLocal(connName, cfPairEcho(toClient.Load), nil)
		if err != nil {
			return nil
		}
		conns = append(conns, local)
		return []byte(connName)
	}
	local, err := cfport.CreateLocal(service, handler, nil)
	if err != nil {
		return err
	}
	defer local.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// A CF client pairs with a Go listener: requests go both ways, each side starting its own.
func TestInteropPairCFClientGoServer(t *testing.T) {
	ctx := ctxTimeout(t, 30*time.Second)
	var box doneBox
	l, err := cfmessageport.ListenPair(uniqueName(t), box.handler(), nil)
	require.NoError(t, err)
	defer l.Close()
	child := testproc.Start(t, "cfpairclient", l.Name())
	c, err := l.Accept(ctx)
	require.NoError(t, err)
	defer c.Close()
	line := child.Line(t)
	require.True(t, strings.HasSuffix(line, `kCFMessagePortSuccess "to the Go server"`), line)
	require.Equal(t, child.Cmd.Process.Pid, c.Peer().PID())
	got, err := c.Request(ctx, msgEcho, []byte("to the CF client"))
	require.NoError(t, err)
	require.Equal(t, "to the CF client", string(got))
	require.NoError(t, exchangeBothWays(ctx, c, &box, 100))
}

// A Go client pairs with a CF server: the fast handshake is dropped by CF and the client falls
// back to names; then requests go both ways.
func TestInteropPairGoClientCFServer(t *testing.T) {
	ctx := ctxTimeout(t, 30*time.Second)
	name := uniqueName(t)
	startChild(t, "cfpairserver", name)
	var box doneBox
	c, err := cfmessageport.DialPair(ctx, name, box.handler(), nil)
	require.NoError(t, err)
	defer c.Close()
	require.NotEmpty(t, c.LocalName(), "a CF server pairs by names")
	got, err := c.Request(ctx, msgEcho, []byte("to the CF server"))
	require.NoError(t, err)
	require.Equal(t, "to the CF server", string(got))
	require.NoError(t, exchangeBothWays(ctx, c, &box, 100))
}
