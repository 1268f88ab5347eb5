// Package echo is a gRPC service served over TCP and over shmring at once:
// the way to grow beyond one host is to keep one server, reach it over
// shmring from the processes on its host and over TCP (or any gRPC
// transport) from the others.
//
// The service is written by hand (a ServiceDesc and a codec that passes
// bytes through) so that the example needs no code generator: Echo returns
// its request (unary), Stream sends a request's payload back N times
// (server streaming). A real service's generated code plugs in the same way.
package echo

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shmring/shmring"
)

// Codec passes []byte messages through unchanged.
type Codec struct{}

func (Codec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, errors.New("echo: message is not a *[]byte")
	}
	return *b, nil
}

func (Codec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return errors.New("echo: message is not a *[]byte")
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (Codec) Name() string { return "echo-bytes" }

// server implements the service.
type server struct{}

func (server) echo(_ context.Context, req []byte) ([]byte, error) { return req, nil }

// stream sends the payload after the request's first 4 bytes back as many
// times as those bytes say (little-endian).
func (server) stream(req []byte, ss grpc.ServerStream) error {
	if len(req) < 4 {
		return errors.New("echo: a stream request starts with a 4-byte count")
	}
	n, payload := binary.LittleEndian.Uint32(req), req[4:]
	for range n {
		if err := ss.SendMsg(&payload); err != nil {
			return err
		}
	}
	return nil
}

// ServiceDesc describes the service to grpc.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: "echo.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req []byte
			if err := dec(&req); err != nil {
				return nil, err
			}
			resp, err := srv.(server).echo(ctx, req)
			return &resp, err
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error {
			var req []byte
			if err := ss.RecvMsg(&req); err != nil {
				return err
			}
			return srv.(server).stream(req, ss)
		},
	}},
}

// NewServer returns a gRPC server with the echo service registered.
func NewServer() *grpc.Server {
	s := grpc.NewServer(grpc.ForceServerCodec(Codec{}))
	s.RegisterService(&ServiceDesc, server{})
	return s
}

// Serve serves s on every listener at once (a TCP one and a shmring one,
// say) until they are closed.
func Serve(s *grpc.Server, ls ...net.Listener) error {
	errs := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errs <- s.Serve(l) }()
	}
	var err error
	for range ls {
		err = errors.Join(err, <-errs)
	}
	return err
}

// Dial returns a client connection to target: "shmring:NAME" reaches the
// server through the shmring listener NAME, anything else through TCP (or
// whatever grpc's resolver makes of it).
func Dial(target string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(Codec{})),
	}
	if name, ok := strings.CutPrefix(target, "shmring:"); ok {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return shmring.Dial(ctx, name, shmring.WithWaitPolicy(shmring.WaitPolicy{}))
		}))
		target = "passthrough:///" + name
	}
	return grpc.NewClient(target, opts...)
}

// Echo calls the unary method.
func Echo(ctx context.Context, cc *grpc.ClientConn, req []byte) ([]byte, error) {
	var resp []byte
	err := cc.Invoke(ctx, "/echo.Echo/Echo", &req, &resp)
	return resp, err
}

// Stream calls the server-streaming method and calls each with every
// message received; it returns how many arrived.
func Stream(ctx context.Context, cc *grpc.ClientConn, n uint32, payload []byte, each func([]byte)) (int, error) {
	st, err := cc.NewStream(ctx, &ServiceDesc.Streams[0], "/echo.Echo/Stream")
	if err != nil {
		return 0, err
	}
	req := binary.LittleEndian.AppendUint32(nil, n)
	req = append(req, payload...)
	if err := st.SendMsg(&req); err != nil {
		return 0, err
	}
	if err := st.CloseSend(); err != nil {
		return 0, err
	}
	got := 0
	var msg []byte
	for {
		if err := st.RecvMsg(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			return got, err
		}
		got++
		if each != nil {
			each(msg)
		}
	}
}
