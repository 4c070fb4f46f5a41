"""grpcio (Python's gRPC, on gRPC's C core) calls our greeter srv (go.micro.srv.greeter,
Say.Hello) and prints one line per check:

    CHECK <name> PASS|FAIL <detail>

A check that needs the harness (tests/src/interop.rs) to act on the srv prints `ASK <what>` and
waits for `OK` on stdin. Exits 1 if any check failed."""

import argparse
import os
import sys
import tempfile
import threading
import time

# The core's keep-alive trace, read back by the keep-alive check: set before gRPC starts.
os.environ["GRPC_TRACE"] = "http_keepalive"
os.environ["GRPC_VERBOSITY"] = "DEBUG"

import grpc  # noqa: E402

import greeter_pb  # noqa: E402

HELLO = "/go.micro.srv.greeter.Say/Hello"
MIB = 1024 * 1024
CHECK_TIMEOUT = 60


def stub(channel, path=HELLO):
    return channel.unary_unary(
        path, request_serializer=greeter_pb.encode, response_deserializer=greeter_pb.decode
    )


def expect(answer, name, instance):
    want = f"Hello {name} srv {instance}. rand:"
    if not answer.startswith(want) or len(answer) != len(want) + 1:
        raise AssertionError(f"answer {answer[:60]!r}... ({len(answer)} bytes) is not {want[:60]!r}... + a letter")


class Checks:
    def __init__(self, args, trace):
        self.args = args
        self.addr = args.addr
        self.trace = trace

    def channel(self, options=()):
        return grpc.insecure_channel(self.addr, options=list(options))

    def call(self, channel, name, instance=None, **kw):
        answer = stub(channel)(name, timeout=kw.pop("timeout", CHECK_TIMEOUT), **kw)
        expect(answer, name, instance or self.args.instance)

    def unary(self):
        with self.channel() as ch:
            self.call(ch, "John")
        return "ok"

    def concurrent_2000_one_channel(self):
        with self.channel() as ch:
            hello = stub(ch)
            futures = [(f"n{i}", hello.future(f"n{i}", timeout=CHECK_TIMEOUT)) for i in range(2000)]
            failures = []
            for name, f in futures:
                try:
                    expect(f.result(), name, self.args.instance)
                except Exception as e:  # every failure is counted, the first reported
                    failures.append(e)
            if failures:
                raise AssertionError(f"{len(failures)} of 2000 failed; first: {failures[0]}")
        return "2000 answered"

    def message_3mib(self):
        with self.channel() as ch:
            self.call(ch, "L" * (3 * MIB))
        return "3 MiB name and answer"

    def deadline_1ms_then_channel_works(self):
        note = "DEADLINE_EXCEEDED"
        with self.channel() as ch:
            self.call(ch, "warm")
            try:
                self.call(ch, "D" * (3 * MIB), timeout=0.001)
                raise AssertionError("a 3 MiB call finished within 1 ms")
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.CANCELLED and e.details() == "Timeout expired":
                    note = 'the server\'s CANCELLED "Timeout expired" came first'
                elif e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise AssertionError(f"1 ms call: {e.code()} {e.details()!r}, want DEADLINE_EXCEEDED")
            for i in range(3):
                self.call(ch, f"after{i}")
        return note

    def unknown_method_unimplemented(self):
        with self.channel() as ch:
            for path in ("/go.micro.srv.greeter.Say/Nope", "/no.such.Service/Hello"):
                try:
                    stub(ch, path)("x", timeout=CHECK_TIMEOUT)
                    raise AssertionError(f"{path} answered")
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                        raise AssertionError(f"{path}: {e.code()} {e.details()!r}, want UNIMPLEMENTED")
            self.call(ch, "still-here")
        return "ok"

    def metadata_ascii_and_binary(self):
        metadata = (
            ("x-ascii", "plain value 1"),
            ("x-trace-id", "abc-123"),
            # grpcio base64-encodes a -bin value on the wire.
            ("x-blob-bin", bytes([0, 1, 2, 0xFE, 0xFF])),
        )
        with self.channel() as ch:
            self.call(ch, "meta", metadata=metadata)
        return "ok"

    def keepalive_pings(self):
        options = [
            ("grpc.keepalive_time_ms", 1000),
            ("grpc.keepalive_timeout_ms", 1000),
            ("grpc.keepalive_permit_without_calls", 1),
            # The core stops pinging after 2 pings without data unless told otherwise.
            ("grpc.http2.max_pings_without_data", 0),
        ]
        states = []
        with self.channel(options) as ch:
            ch.subscribe(states.append, try_to_connect=True)
            start = self.trace.tell()
            self.call(ch, "before")
            # Idle for 4 keep-alive periods: the pings must be answered, the connection kept.
            time.sleep(4)
            self.call(ch, "after")
            ch.unsubscribe(states.append)
            pings = self.trace.read_from(start).count("Finish keepalive ping")
        ready = [s for s in states if s != grpc.ChannelConnectivity.IDLE]
        after_ready = ready[ready.index(grpc.ChannelConnectivity.READY) :] if grpc.ChannelConnectivity.READY in ready else []
        if any(s != grpc.ChannelConnectivity.READY for s in after_ready):
            raise AssertionError(f"the connection did not stay READY: {[s.name for s in states]}")
        if pings < 2:
            raise AssertionError(f"{pings} keep-alive pings answered in 4 s (want >= 2)")
        return f"{pings} pings answered in 4 s, connection kept"

    def reconnect_after_restart(self):
        with self.channel() as ch:
            self.call(ch, "before")
            ask("restart")
            # The same channel: its connection is gone; wait_for_ready waits out the reconnect.
            self.call(ch, "after", instance=self.args.restarted, wait_for_ready=True, timeout=30)
        return f"answered by srv {self.args.restarted} on the same port"

    def sigterm_in_flight(self):
        # Small static windows (no BDP growth). The unary method is called as a server stream
        # (the same bytes on the wire) so that its HEADERS can be seen before its message, and
        # no message is read until the srv has been told to stop: each 1 MiB answer waits on
        # the 64 KiB window that this client grants only once it reads.
        options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 65535)]
        with self.channel(options) as ch:
            self.call(ch, "warm", instance=self.args.restarted)
            hello = ch.unary_stream(HELLO, request_serializer=greeter_pb.encode, response_deserializer=greeter_pb.decode)
            names = [f"{i}-" + "T" * MIB for i in range(8)]
            calls = [hello(n, timeout=CHECK_TIMEOUT) for n in names]
            # Every call accepted: the srv has answered its HEADERS.
            for c in calls:
                c.initial_metadata()
            pending = sum(not c.done() for c in calls)
            if pending == 0:
                raise AssertionError("every call ended before the stop: nothing was in flight")
            # The harness stops this process, SIGTERMs the srv, waits until it no longer
            # listens, and lets this process go on.
            ask("pause-and-term")
            outcomes = []
            for name, c in zip(names, calls):
                try:
                    answers = list(c)
                    if len(answers) != 1:
                        raise AssertionError(f"{len(answers)} messages, want 1")
                    expect(answers[0], name, self.args.restarted)
                    outcomes.append("answered")
                except grpc.RpcError as e:
                    outcomes.append(f"{e.code().name} {e.details()!r}")
            lost = [o for o in outcomes if o != "answered"]
            if lost:
                raise AssertionError(f"accepted calls lost: {lost}")
            # A call after the stop is never accepted: UNAVAILABLE, which a client may retry.
            try:
                stub(ch)("late", timeout=CHECK_TIMEOUT)
                raise AssertionError("a call after the stop was answered")
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise AssertionError(f"a call after the stop: {e.code()} {e.details()!r}, want UNAVAILABLE")
                late = f"{e.code().name} {e.details()!r}"
        return f"8 of 8 accepted calls answered in full ({pending} not yet answered when the srv got SIGTERM); a call after the stop: {late}"


def ask(what):
    print(f"ASK {what}", flush=True)
    reply = sys.stdin.readline().strip()
    if reply != "OK":
        raise AssertionError(f"the harness could not {what}: {reply!r}")


class Trace:
    """Our stderr (fd 2, where gRPC's core logs) goes to a file; read back by the checks,
    copied to the real stderr at exit."""

    def __init__(self):
        self.file = tempfile.TemporaryFile()
        self.stderr = os.dup(2)
        os.dup2(self.file.fileno(), 2)

    def tell(self):
        return os.lseek(self.file.fileno(), 0, os.SEEK_END)

    def read_from(self, offset):
        return os.pread(self.file.fileno(), self.tell() - offset, offset).decode("utf-8", "replace")

    def close(self):
        os.write(self.stderr, self.read_from(0).encode())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True, help="host:port of the greeter srv")
    parser.add_argument("--instance", default="one", help="the srv's --name")
    parser.add_argument("--restarted", default="restarted", help="the --name of the srv after the restart")
    parser.add_argument("--only", default="", help="comma-separated checks to run (all by default)")
    args = parser.parse_args()
    trace = Trace()
    checks = Checks(args, trace)
    names = [
        "unary",
        "concurrent-2000-one-channel",
        "message-3mib",
        "deadline-1ms-then-channel-works",
        "unknown-method-unimplemented",
        "metadata-ascii-and-binary",
        "keepalive-pings",
        "reconnect-after-restart",
        "sigterm-in-flight",
    ]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    failed = 0
    try:
        for name in names:
            try:
                detail = getattr(checks, name.replace("-", "_"))()
                print(f"CHECK {name} PASS {detail}", flush=True)
            except Exception as e:  # a check's failure is reported, the others still run
                failed += 1
                text = f"{type(e).__name__}: {e}".replace("\n", " | ")
                print(f"CHECK {name} FAIL {text}", flush=True)
    finally:
        trace.close()
    print(f"grpcio client: {len(names)} checks run, {failed} failing", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
