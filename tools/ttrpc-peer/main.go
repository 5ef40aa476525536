// ttrpc-peer: the real Go ttrpc (github.com/containerd/ttrpc v1.2.9, as containerd v2.4.2 links it) on one
// side of cristack's Python ttrpc, for tests/e2e/test_ttrpc_interop.py. Every result is one JSON line on
// stdout.
//
//	ttrpc-peer serve SOCKET          serves cristack.interop.v1.Echo (Echo, Fail) and containerd's ttrpc
//	                                 Events service; prints {"listening": SOCKET}, then one line per call
//	ttrpc-peer call SOCKET           calls Echo (with metadata and a timeout), Fail and an unknown method
//	ttrpc-peer task SOCKET ID        calls a shim as containerd's task v3 client does: Connect, State
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const echoService = "cristack.interop.v1.Echo"

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
}

func metadataOf(ctx context.Context) map[string][]string {
	md, _ := ttrpc.GetMetadata(ctx)
	out := map[string][]string{}
	for k, v := range md {
		out[k] = v
	}
	return out
}

// echo answers the value with what the call carried: metadata and whether a deadline was set.
func echo(ctx context.Context, unmarshal func(any) error) (any, error) {
	var req wrapperspb.StringValue
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	_, hasDeadline := ctx.Deadline()
	md := metadataOf(ctx)
	keys := make([]any, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].(string) < keys[j].(string) })
	fields := map[string]any{"value": req.Value, "deadline": hasDeadline, "keys": keys}
	for k, v := range md {
		fields["md:"+k] = v[0]
	}
	emit(map[string]any{"served": "Echo", "value": req.Value, "metadata": md, "deadline": hasDeadline})
	return structpb.NewStruct(fields)
}

func fail(ctx context.Context, unmarshal func(any) error) (any, error) {
	var req wrapperspb.StringValue
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	return nil, status.Errorf(codes.NotFound, "no such thing: %s", req.Value)
}

type events struct{}

func (events) Forward(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	env := r.GetEnvelope()
	emit(map[string]any{
		"served": "Forward", "metadata": metadataOf(ctx),
		"namespace": env.GetNamespace(), "topic": env.GetTopic(), "type_url": env.GetEvent().GetTypeUrl(),
		"timestamp": env.GetTimestamp().AsTime().Format(time.RFC3339Nano),
	})
	return &emptypb.Empty{}, nil
}

func serve(path string) error {
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	s, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	s.Register(echoService, map[string]ttrpc.Method{"Echo": echo, "Fail": fail})
	eventsapi.RegisterTTRPCEventsService(s, events{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		s.Close()
	}()
	emit(map[string]any{"listening": path})
	if err := s.Serve(context.Background(), l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) {
		return err
	}
	return nil
}

func statusLine(call string, err error) map[string]any {
	st, _ := status.FromError(err)
	return map[string]any{"call": call, "code": int(st.Code()), "message": st.Message()}
}

func dial(path string) (*ttrpc.Client, error) {
	conn, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return ttrpc.NewClient(conn), nil
}

func call(path string) error {
	client, err := dial(path)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := ttrpc.WithMetadata(context.Background(), ttrpc.MD{"x-cristack": {"from-go"}})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	var out structpb.Struct
	if err := client.Call(ctx, echoService, "Echo", wrapperspb.String("hello from go"), &out); err != nil {
		emit(statusLine("Echo", err))
	} else {
		emit(map[string]any{"call": "Echo", "code": 0, "result": out.AsMap()})
	}
	var nothing emptypb.Empty
	emit(statusLine("Fail", client.Call(ctx, echoService, "Fail", wrapperspb.String("x"), &nothing)))
	emit(statusLine("Nope", client.Call(ctx, echoService, "Nope", wrapperspb.String("x"), &nothing)))
	emit(statusLine("NoService", client.Call(ctx, "no.Such", "Echo", wrapperspb.String("x"), &nothing)))
	return nil
}

func task(path, id string) error {
	client, err := dial(path)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := ttrpc.WithMetadata(context.Background(), ttrpc.MD{"containerd-namespace-ttrpc": {"k8s.io"}})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tc := taskapi.NewTTRPCTaskClient(client)
	conn, err := tc.Connect(ctx, &taskapi.ConnectRequest{ID: id})
	if err != nil {
		emit(statusLine("Connect", err))
		return nil
	}
	emit(map[string]any{"call": "Connect", "code": 0, "shim_pid": conn.ShimPid, "task_pid": conn.TaskPid})
	st, err := tc.State(ctx, &taskapi.StateRequest{ID: id})
	if err != nil {
		emit(statusLine("State", err))
		return nil
	}
	emit(map[string]any{"call": "State", "code": 0, "id": st.ID, "pid": st.Pid, "status": st.Status.String(),
		"bundle": st.Bundle, "stdout": st.Stdout})
	return nil
}

func main() {
	args := os.Args[1:]
	var err error
	switch {
	case len(args) == 2 && args[0] == "serve":
		err = serve(args[1])
	case len(args) == 2 && args[0] == "call":
		err = call(args[1])
	case len(args) == 3 && args[0] == "task":
		err = task(args[1], args[2])
	default:
		err = errors.New("usage: ttrpc-peer serve SOCKET | call SOCKET | task SOCKET ID")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ttrpc-peer:", err)
		os.Exit(1)
	}
}
