// A grpc-js server of go.micro.srv.greeter's Say.Hello ("Hello <name> from node"; the name
// "fail" is answered INVALID_ARGUMENT "bad name", "fail-micro" INVALID_ARGUMENT with a go-micro
// JSON error (403 "refused") as its message, as a go-micro server sends one), on 127.0.0.1 and the port given (0: any).
// Prints `LISTENING <port>` once serving; stops when stdin closes, so it never outlives the test.
'use strict';

const grpc = require('@grpc/grpc-js');
const { parseArgs } = require('util');
const pb = require('./greeter_pb');

const { values: args } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

const service = {
  Hello: {
    path: '/go.micro.srv.greeter.Say/Hello',
    requestStream: false,
    responseStream: false,
    requestSerialize: pb.encode,
    requestDeserialize: pb.decode,
    responseSerialize: pb.encode,
    responseDeserialize: pb.decode,
  },
};

const server = new grpc.Server();
server.addService(service, {
  Hello(call, callback) {
    if (call.request === 'fail') {
      callback({ code: grpc.status.INVALID_ARGUMENT, details: 'bad name' });
      return;
    }
    if (call.request === 'fail-micro') {
      const error = { id: 'go.micro.srv.greeter', code: 403, detail: 'refused', status: 'Forbidden' };
      callback({ code: grpc.status.INVALID_ARGUMENT, details: JSON.stringify(error) });
      return;
    }
    callback(null, `Hello ${call.request} from node`);
  },
});
server.bindAsync(`127.0.0.1:${args.port}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(`bind: ${err.message}`);
    process.exit(1);
  }
  process.stdout.write(`LISTENING ${port}\n`);
});
process.stdin.on('data', () => {});
process.stdin.on('end', () => server.tryShutdown(() => process.exit(0)));
