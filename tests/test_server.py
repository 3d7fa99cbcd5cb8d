import nats
from natsflow_engine.server import EmbeddedNatsServer


async def test_session_server_has_jetstream(nc):
    js = nc.jetstream()
    info = await js.account_info()
    assert info.limits is not None


async def test_restart_keeps_port_and_data(tmp_path):
    server = EmbeddedNatsServer(store_dir=tmp_path / "js").start()
    try:
        nc = await nats.connect(server.url)
        kv = await nc.jetstream().create_key_value(bucket="keep")
        await kv.put("k", b"v")
        await nc.close()
        port = server.port
        server.stop()
        server.start()
        assert server.port == port
        nc = await nats.connect(server.url)
        kv = await nc.jetstream().key_value("keep")
        assert (await kv.get("k")).value == b"v"
        await nc.close()
    finally:
        server.close()
