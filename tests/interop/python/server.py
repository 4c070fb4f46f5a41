"""A grpcio server of go.micro.srv.greeter's Say.Hello ("Hello <name> from python"; the name
"fail" is answered INVALID_ARGUMENT "bad name", "fail-micro" INVALID_ARGUMENT with a go-micro
JSON error (403 "refused") as its message, as a go-micro server sends one), on 127.0.0.1 and the port given (0: any).
Prints `LISTENING <port>` once serving; stops when stdin closes, so it never outlives the test."""

import argparse
import json
import sys
from concurrent import futures

import grpc

import greeter_pb


def hello(name, context):
    if name == "fail":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad name")
    if name == "fail-micro":
        error = {"id": "go.micro.srv.greeter", "code": 403, "detail": "refused", "status": "Forbidden"}
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, json.dumps(error, separators=(",", ":")))
    return f"Hello {name} from python"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.unary_unary_rpc_method_handler(
        hello, request_deserializer=greeter_pb.decode, response_serializer=greeter_pb.encode
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("go.micro.srv.greeter.Say", {"Hello": handler}),)
    )
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"LISTENING {port}", flush=True)
    while sys.stdin.readline():
        pass
    server.stop(1).wait()


if __name__ == "__main__":
    main()
