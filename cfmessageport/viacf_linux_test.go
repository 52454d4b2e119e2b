//go:build linux

package cfmessageport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
)

// EnvViaCoreFoundation, set to 1, makes a test binary (and the children it re-executes) run the
// public-API-only path (viacf.go) from its init: Listen and Dial go through internal/cfport, over
// the libSystem double's CoreFoundation, whose CFMessagePort is the native implementation below.
const EnvViaCoreFoundation = "MACHPORT_TEST_VIA_COREFOUNDATION"

func init() {
	if os.Getenv(EnvViaCoreFoundation) == "1" {
		SetViaCoreFoundation(true)
	}
}

// SetViaCoreFoundation selects the CoreFoundation path (true) or the native one, installing the
// double's CoreFoundation the first time. It returns the previous choice. Tests must not switch
// while ports of the other path are open.
func SetViaCoreFoundation(on bool) (was bool) {
	if on {
		libsystemdouble.InstallCoreFoundation(nativePorts{})
	}
	was, viaCoreFoundation = viaCoreFoundation, on
	return was
}

// nativePorts is the CFMessagePort protocol under the double's CoreFoundation: this package's
// native implementation, called below the viaCoreFoundation switch (listen, and bootstrap's
// look-up with newRemote, as DialWithOptions does).
type nativePorts struct{}

func (nativePorts) Listen(name string, serve func(int32, []byte) []byte) (func(), error) {
	srv, err := listen(name, HandlerFunc(func(_ context.Context, req *Message) ([]byte, error) {
		return serve(req.MsgID, bytes.Clone(req.Data)), nil
	}), nil, nil)
	if err != nil {
		return nil, err
	}
	return func() { srv.Close() }, nil
}

func (nativePorts) Dial(name string) (libsystemdouble.MessagePortRemote, error) {
	s, err := bootstrap.LookUp(context.Background(), name)
	if err != nil {
		return nil, err
	}
	r, err := newRemote(name, s)
	if err != nil {
		return nil, err
	}
	return nativeRemote{r}, nil
}

type nativeRemote struct{ r *Remote }

func (n nativeRemote) Request(msgid int32, data []byte, timeout time.Duration, wantReply bool) ([]byte, int32) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var reply []byte
	var err error
	if wantReply {
		reply, err = n.r.Request(ctx, msgid, data)
	} else {
		err = n.r.Send(ctx, msgid, data)
	}
	var e *Error
	switch {
	case err == nil:
		return reply, 0
	case errors.As(err, &e) && e.Status != 0:
		return nil, int32(e.Status)
	}
	return nil, int32(ErrTransport)
}

func (n nativeRemote) Invalid() bool { return n.r.isInvalid() }

func (n nativeRemote) Close() { n.r.Close() }
