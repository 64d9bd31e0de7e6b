"""`import unifilter_hf` changes nothing outside the package: `datasets`' image decoder, fork hooks, torch."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, os
    import datasets, torch, transformers
    from datasets.features.image import Image

    original_decode = Image.decode_example
    hooks = []
    real_register = os.register_at_fork

    def spy(**kwargs):
        hooks.extend(getattr(f, "__module__", "") or "" for f in kwargs.values())
        return real_register(**kwargs)

    os.register_at_fork = spy
    torch.set_num_threads(2)
    torch.ones(64, 64) @ torch.ones(64, 64)  # torch's thread pool is up, as in a real parent process

    import unifilter_hf
    import unifilter_hf.filtering  # the datasets callables, imported by most users
    import unifilter_hf.curation
    import unifilter_hf.report

    def child_threads():
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, str(torch.get_num_threads()).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        return int(os.read(read, 16))

    out = {"decode_unchanged": Image.decode_example is original_decode,
           "hooks_after_import": [m for m in hooks if m.startswith("unifilter_hf")],
           "child_threads_after_import": child_threads()}
    from unifilter_hf.scoring import QualityScorer
    from unifilter_hf.tiny import tiny_model_and_processor
    QualityScorer(*tiny_model_and_processor())  # the first scorer is where the fork hook belongs
    QualityScorer(*tiny_model_and_processor())
    out["hooks_after_scorers"] = [m for m in hooks if m.startswith("unifilter_hf")]
    out["child_threads_after_scorer"] = child_threads()
    print(json.dumps(out))
    """
)


def test_import_changes_nothing_outside_the_package():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["decode_unchanged"] is True
    assert out["hooks_after_import"] == [] and out["child_threads_after_import"] == 2
    # Positive control: the spy and the fork probe do see the hook once a scorer exists, registered once.
    assert out["hooks_after_scorers"] == ["unifilter_hf.host_threads"] and out["child_threads_after_scorer"] == 1
