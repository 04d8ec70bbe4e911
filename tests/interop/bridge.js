'use strict';
// A line-oriented bridge between one ocpp-rpc peer (strict mode) and the pytest module
// tests/test_interop_ocpp_rpc.py. The node side holds no OCPP knowledge of its own: it
// validates what crosses the wire with ocpp-rpc's copy of the official schemas and
// reports everything as JSON lines on stdout; the test decides what to send and answer.
//
// stdin commands (one JSON object per line):
//   {"op":"call","id":N,"action":A,"params":{...},"timeoutMs":T}  -> {"event":"result","id":N,...}
//   {"op":"reply","messageId":M,"result":{...}}                   answer a forwarded inbound CALL
//   {"op":"reply_error","messageId":M,"code":C,"description":D}   answer it with a CALLERROR
//   {"op":"close"}                                                 close the connection(s) and exit
// stdout events: ready/open/client, inbound (a CALL that passed strict validation and reached
// the handler), strict_failure, sent_response (the wire frame this peer answered with),
// bad_message, result, closed, fatal.

const path = require('path');
const readline = require('readline');

let rpc;
try {
    rpc = require('ocpp-rpc');
} catch (err) {
    process.stdout.write(JSON.stringify({event: 'fatal', message: `cannot load ocpp-rpc: ${err.message}`}) + '\n');
    process.exit(4);
}
const {createRPCError} = rpc;

const SCHEMA_FILES = {'ocpp1.6': 'ocpp1_6.json', 'ocpp2.0.1': 'ocpp2_0_1.json'};

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function parseConfig() {
    const cfg = JSON.parse(process.argv[2] || '{}');
    if (!SCHEMA_FILES[cfg.protocol]) {
        throw new Error(`config.protocol must be one of ${Object.keys(SCHEMA_FILES).join(', ')}`);
    }
    return Object.assign({
        handlers: 'per-action',   // or 'wildcard': one catch-all handler, as ocpp-rpc's README shows
        replyTimeoutMs: 5000,     // how long a forwarded CALL waits for the test's answer
        callTimeoutMs: 5000,
        lifetimeMs: 60000,        // hard bound: the peer never outlives a stuck test
    }, cfg);
}

// Every action ocpp-rpc has a request schema for, in this subprotocol.
function knownActions(protocol) {
    const dir = path.join(path.dirname(require.resolve('ocpp-rpc')), 'lib', 'schemas');
    const schemas = require(path.join(dir, SCHEMA_FILES[protocol]));
    return schemas.map(s => s.$id).filter(id => id.endsWith('.req')).map(id => id.slice(4, -4));
}

class Bridge {
    constructor(cfg) {
        this.cfg = cfg;
        this.pending = new Map();        // messageId -> {resolve, reject, timer}
        this.failureOf = new WeakMap();  // validation error object -> what failed
    }

    // Hand an inbound CALL (already strictly validated by ocpp-rpc) to the test, await its answer.
    forward(who) {
        return ({messageId, method, params}) => new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(messageId);
                reject(createRPCError('InternalError', `bridge: the test gave no answer within ${this.cfg.replyTimeoutMs} ms`));
            }, this.cfg.replyTimeoutMs);
            this.pending.set(messageId, {resolve, reject, timer});
            emit({event: 'inbound', who, messageId, action: method, params});
        });
    }

    attach(client, who) {
        if (this.cfg.handlers === 'wildcard') {
            client.handle(this.forward(who));
        } else {
            for (const action of knownActions(this.cfg.protocol)) {
                client.handle(action, this.forward(who));
            }
        }
        client.on('strictValidationFailure', ev => {
            this.failureOf.set(ev.error, {isCall: ev.isCall, outbound: ev.outbound});
            emit({
                event: 'strict_failure', who, messageId: ev.messageId, action: ev.method,
                outbound: ev.outbound, isCall: ev.isCall, code: ev.error.rpcErrorCode || null,
                message: ev.error.message, params: ev.params, result: ev.result,
            });
        });
        client.on('response', ev => {
            if (ev.outbound) {
                emit({event: 'sent_response', who, messageId: ev.payload[1], frame: ev.payload});
            }
        });
        client.on('badMessage', ev => {
            emit({event: 'bad_message', who, message: ev.error && ev.error.message,
                  code: ev.error && ev.error.rpcErrorCode, response: ev.response,
                  raw: ev.buffer ? ev.buffer.toString('utf8') : null});
        });
    }

    answer(cmd) {
        const p = this.pending.get(cmd.messageId);
        if (!p) {
            emit({event: 'error', message: `no forwarded CALL with message id ${cmd.messageId}`});
            return;
        }
        this.pending.delete(cmd.messageId);
        clearTimeout(p.timer);
        if (cmd.op === 'reply') {
            p.resolve(cmd.result);
        } else {
            p.reject(createRPCError(cmd.code, cmd.description || ''));
        }
    }

    async call(client, cmd) {
        try {
            const result = await client.call(cmd.action, cmd.params, {callTimeoutMs: cmd.timeoutMs || this.cfg.callTimeoutMs});
            emit({event: 'result', id: cmd.id, action: cmd.action, ok: true, result});
        } catch (err) {
            const f = this.failureOf.get(err);
            // strict: 'request' = ocpp-rpc refused to send our own CALL (a bad stimulus in the test),
            //         'response' = the harness's CALLRESULT failed ocpp-rpc's schema check,
            //         null = a CALLERROR came over the wire, or a timeout / connection loss.
            emit({
                event: 'result', id: cmd.id, action: cmd.action, ok: false,
                strict: f ? (f.isCall ? 'request' : 'response') : null,
                code: err.rpcErrorCode || null, name: err.name || null, message: err.message,
                details: err.details || null,
            });
        }
    }

    // Reads commands; `target()` names the client a call goes to; `shutdown()` ends the peer.
    run(target, shutdown) {
        const lifetime = setTimeout(() => {
            emit({event: 'fatal', message: `lifetime of ${this.cfg.lifetimeMs} ms exceeded`});
            process.exit(3);
        }, this.cfg.lifetimeMs);
        lifetime.unref();
        const rl = readline.createInterface({input: process.stdin});
        rl.on('line', line => {
            if (!line.trim()) return;
            let cmd;
            try {
                cmd = JSON.parse(line);
            } catch (err) {
                emit({event: 'error', message: `bad command: ${err.message}`});
                return;
            }
            if (cmd.op === 'call') {
                const client = target(cmd);
                if (!client) {
                    emit({event: 'result', id: cmd.id, action: cmd.action, ok: false, strict: null,
                          code: null, name: 'NoConnection', message: 'no connected peer'});
                    return;
                }
                this.call(client, cmd);
            } else if (cmd.op === 'reply' || cmd.op === 'reply_error') {
                this.answer(cmd);
            } else if (cmd.op === 'close') {
                shutdown(0);
            } else {
                emit({event: 'error', message: `unknown op ${cmd.op}`});
            }
        });
        rl.on('close', () => shutdown(0));   // the test went away: never linger
    }
}

module.exports = {Bridge, emit, parseConfig};
