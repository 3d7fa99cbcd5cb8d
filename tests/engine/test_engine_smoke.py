from pathlib import Path

from natsflow.testing import ProcessTestEngine

MODELS = Path(__file__).parent / "models"


async def test_reference_process_runs_to_completion():
    async with ProcessTestEngine() as engine:
        assert await engine.deploy(MODELS / "reference.bpmn") == ["reference"]
        seen = []

        @engine.task("check")
        async def check(job):
            seen.append(job.variables["amount"])
            return {"checked": True}

        big = await engine.start_instance("reference", {"amount": 150})
        small = await engine.start_instance("reference", {"amount": 5})
        await engine.wait_until_idle()
        snap = await engine.instance(big)
        assert snap.state == "completed"
        assert snap.completed_elements == ["start", "check", "gw", "end_big"]
        assert snap.variables == {"amount": 150, "checked": True}
        snap = await engine.instance(small)
        assert snap.completed_elements == ["start", "check", "gw", "end_small"]
        assert sorted(seen) == [5, 150]
        assert await engine.instances("reference") == [big, small]
