// grpccompat calls our greeter srv (go.micro.srv.greeter, Say.Hello) with grpc-go, an
// independent gRPC implementation, and prints one line per check:
//
//	CHECK <name> PASS|FAIL <detail>
//
// It exits 1 if any check failed. The messages are hand-coded with protowire: the request is
// {string name = 1}, the response {string msg = 1}.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	hello        = "/go.micro.srv.greeter.Say/Hello"
	checkTimeout = 60 * time.Second
	kib          = 1024
	// Calls in flight at once on one connection (our server takes 200 streams at a time).
	concurrentOne = 2000
)

// message is a one-string-field protobuf message (field 1).
type message struct{ text string }

// codec sends and reads `message`s, so no generated code is needed.
type codec struct{}

func (codec) Name() string { return "proto" }

func (codec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(*message)
	if !ok {
		return nil, fmt.Errorf("cannot marshal %T", v)
	}
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendString(b, m.text), nil
}

func (codec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(*message)
	if !ok {
		return fmt.Errorf("cannot unmarshal into %T", v)
	}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if num == 1 && typ == protowire.BytesType {
			s, n := protowire.ConsumeString(data)
			if n < 0 {
				return protowire.ParseError(n)
			}
			m.text, data = s, data[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
	}
	return nil
}

var (
	addr     = flag.String("addr", "", "host:port of the greeter srv")
	instance = flag.String("instance", "one", "the srv's --name, as it appears in answers")
	conns    = flag.Int("conns", 10, "fresh connections in the HPACK check")
	perConn  = flag.Int("per-conn", 4, "pairs of 70 KB and 256 KB calls per fresh connection")
)

func dial(ctx context.Context, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	options := append([]grpc.DialOption{grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(codec{}))}, extra...)
	return grpc.DialContext(ctx, *addr, options...)
}

// Static 64 KiB stream and connection windows (grpc-go's defaults before it grows them).
//
// The fresh-connection check needs them: grpc-go 1.33 (Debian's) grows its windows by BDP
// estimation, and a stream it creates while it announces a larger SETTINGS_INITIAL_WINDOW_SIZE
// keeps the old 64 KiB limit (grpc-go#5358, fixed in 1.49), so any server that honours the
// SETTINGS gets FLOW_CONTROL_ERROR on ~1% of those streams ("unexpected EOF"). Static
// windows turn the estimation off; they also keep every large answer waiting for the window,
// which is the HPACK case.
var staticWindows = []grpc.DialOption{
	grpc.WithInitialWindowSize(65535),
	grpc.WithInitialConnWindowSize(65535),
}

// call says hello as `name` and checks the answer: "Hello <name> srv <instance>. rand:<letter>".
func call(ctx context.Context, conn *grpc.ClientConn, name string) error {
	var reply message
	if err := conn.Invoke(ctx, hello, &message{name}, &reply); err != nil {
		return err
	}
	want := fmt.Sprintf("Hello %s srv %s. rand:", name, *instance)
	if !strings.HasPrefix(reply.text, want) || len(reply.text) != len(want)+1 {
		return fmt.Errorf("answer %.60q... (%d bytes) is not %.60q... + a letter", reply.text, len(reply.text), want)
	}
	return nil
}

func main() {
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "grpccompat: -addr is required")
		os.Exit(2)
	}
	checks := []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"unary", unary},
		{"hpack-fresh-connections-large-answers", freshConnections},
		{"concurrent-2000-one-connection", concurrent},
		{"message-3mib", large},
		{"deadline-1ms-then-channel-works", deadline},
		{"unknown-method-unimplemented", unknown},
		{"metadata-ascii-and-binary", withMetadata},
	}
	failed := 0
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		err := c.run(ctx)
		cancel()
		if err != nil {
			failed++
			fmt.Printf("CHECK %s FAIL %s\n", c.name, strings.ReplaceAll(err.Error(), "\n", " | "))
		} else {
			fmt.Printf("CHECK %s PASS ok\n", c.name)
		}
	}
	fmt.Printf("grpccompat: %d checks run, %d failing\n", len(checks), failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func unary(ctx context.Context) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return call(ctx, conn, "John")
}

func hpackSizes() []int {
	var sizes []int
	for i := 0; i < *perConn; i++ {
		sizes = append(sizes, 70*kib, 256*kib)
	}
	return sizes
}

// Answers larger than grpc-go's 64 KiB connection window queue their trailers behind their
// DATA while other answers' HEADERS go out: the HPACK case of issue 22.
func freshConnections(ctx context.Context) error {
	var failures []string
	for i := 0; i < *conns; i++ {
		conn, err := dial(ctx, staticWindows...)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for j, size := range hpackSizes() {
			wg.Add(1)
			go func(j, size int) {
				defer wg.Done()
				name := fmt.Sprintf("%d-%d-%s", i, j, strings.Repeat("n", size))
				if err := call(ctx, conn, name); err != nil {
					errs <- fmt.Errorf("call of %d bytes: %v", size, err)
				}
			}(j, size)
		}
		wg.Wait()
		close(errs)
		if err, ok := <-errs; ok {
			failures = append(failures, fmt.Sprintf("connection %d: %v", i, err))
		}
		conn.Close()
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d connections failed; first: %s", len(failures), *conns, strings.Join(failures, "; "))
	}
	return nil
}

func concurrent(ctx context.Context) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for i := 0; i < concurrentOne; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := call(ctx, conn, fmt.Sprintf("n%d", i)); err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d calls failed; first: %v", len(failures), concurrentOne, failures[0])
	}
	return nil
}

func large(ctx context.Context) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return call(ctx, conn, strings.Repeat("L", 3*kib*kib))
}

// A 3 MiB call cannot cross loopback, two 64 KiB windows and the handler within a millisecond:
// it must end with the deadline, and the channel must still serve the next call. The deadline
// is grpc-go's DEADLINE_EXCEEDED when the client's timer fires first; when the server's
// answer to the expired grpc-timeout comes first, it is that answer: our srv gives tonic's
// CANCELLED "Timeout expired" (a grpc-go server would say DEADLINE_EXCEEDED), noted on stdout.
func deadline(ctx context.Context) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := call(ctx, conn, "warm"); err != nil {
		return fmt.Errorf("before the deadline: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	err = call(short, conn, strings.Repeat("D", 3*kib*kib))
	cancel()
	s := status.Convert(err)
	switch {
	case s.Code() == codes.DeadlineExceeded:
	case s.Code() == codes.Canceled && s.Message() == "Timeout expired":
		fmt.Println("NOTE deadline-1ms-then-channel-works: the server's answer came first: CANCELLED \"Timeout expired\"")
	default:
		return fmt.Errorf("1 ms call: got %v, want DeadlineExceeded", err)
	}
	for i := 0; i < 3; i++ {
		if err := call(ctx, conn, fmt.Sprintf("after%d", i)); err != nil {
			return fmt.Errorf("after the deadline: %v", err)
		}
	}
	return nil
}

func unknown(ctx context.Context) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, path := range []string{"/go.micro.srv.greeter.Say/Nope", "/no.such.Service/Hello"} {
		var reply message
		err := conn.Invoke(ctx, path, &message{"x"}, &reply)
		if status.Code(err) != codes.Unimplemented {
			return fmt.Errorf("%s: got %v, want Unimplemented", path, err)
		}
	}
	return call(ctx, conn, "still-here")
}

func withMetadata(ctx context.Context) error {
	conn, err := dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	md := metadata.AppendToOutgoingContext(ctx,
		"x-ascii", "plain value 1",
		"x-trace-id", "abc-123",
		// grpc-go base64-encodes a -bin value on the wire.
		"x-blob-bin", string([]byte{0, 1, 2, 0xfe, 0xff}),
	)
	var reply message
	if err := conn.Invoke(md, hello, &message{"meta"}, &reply); err != nil {
		return err
	}
	if !strings.HasPrefix(reply.text, "Hello meta srv ") {
		return fmt.Errorf("answer %q", reply.text)
	}
	return nil
}
