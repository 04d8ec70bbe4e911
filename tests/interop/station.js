'use strict';
// An ocpp-rpc RPCClient in strict mode playing the charging station against the harness's
// CSMS. Usage: node station.js '{"url":"ws://127.0.0.1:PORT/ocpp","identity":"CS1","protocol":"ocpp2.0.1"}'
// See bridge.js for the stdin/stdout protocol.

const {RPCClient} = require('ocpp-rpc');
const {Bridge, emit, parseConfig} = require('./bridge');

async function main() {
    const cfg = parseConfig();
    const bridge = new Bridge(cfg);
    const client = new RPCClient({
        endpoint: cfg.url,
        identity: cfg.identity,
        protocols: [cfg.protocol],
        strictMode: true,
        reconnect: false,
        callTimeoutMs: cfg.callTimeoutMs,
    });
    bridge.attach(client, cfg.identity);
    let exiting = false;
    const shutdown = async (code) => {
        if (exiting) return;
        exiting = true;
        try {
            await Promise.race([client.close({code: 1000, reason: 'test done'}), new Promise(r => setTimeout(r, 2000))]);
        } catch (err) { /* already closed */ }
        process.exit(code);
    };
    client.on('close', ev => {
        emit({event: 'closed', code: ev.code, reason: String(ev.reason || '')});
        if (!exiting) {
            exiting = true;
            process.exit(0);
        }
    });
    try {
        await client.connect();
    } catch (err) {
        emit({event: 'fatal', message: `connect failed: ${err.message}`});
        process.exit(2);
    }
    emit({event: 'open', protocol: client.protocol, identity: client.identity});
    bridge.run(() => client, shutdown);
}

main().catch(err => {
    emit({event: 'fatal', message: err.stack || String(err)});
    process.exit(1);
});
