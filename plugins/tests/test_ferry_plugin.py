"""Tests of plugins/xapi.d/ferry against stand-ins for XenAPIPlugin and xl (stdlib only).

Run: python3 -m unittest discover -s plugins/tests -v
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
STUB_DIR = os.path.join(HERE, "stub")
PLUGIN_PATH = os.path.join(HERE, "..", "xapi.d", "ferry")

# The plugin imports XenAPIPlugin, which only exists in dom0: the stand-in comes first on sys.path.
sys.path.insert(0, STUB_DIR)
import XenAPIPlugin  # noqa: E402


def load_plugin():
    # Loaded as "__main__" so its `if __name__ == "__main__"` dispatch runs and hands the stand-in
    # the function table, as xapi's run would; the file has no .py, hence an explicit loader.
    loader = importlib.machinery.SourceFileLoader("__main__", PLUGIN_PATH)
    spec = importlib.util.spec_from_loader("__main__", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


plugin = load_plugin()


class FerryPluginTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ferry-plugin-")
        self.log = os.path.join(self.tmp, "xl.log")
        self.state = os.path.join(self.tmp, "xl.json")
        self.saved_env = dict(os.environ)
        os.environ["PATH"] = STUB_DIR + os.pathsep + os.environ.get("PATH", "")
        os.environ["FERRY_XL_LOG"] = self.log
        os.environ["FERRY_XL_STATE"] = self.state
        os.environ.pop("FERRY_XL_SCHEDULER", None)

    def tearDown(self):
        os.environ.clear()
        os.environ.update(self.saved_env)
        shutil.rmtree(self.tmp)

    def call(self, fn, **args):
        """Calls fn through the dispatch table, as xapi would, and decodes its JSON answer."""
        return json.loads(XenAPIPlugin.table[fn](None, args))

    def xl_calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def seed(self, **domains):
        with open(self.state, "w") as f:
            json.dump(domains, f)

    def assertFails(self, exc_class, fragment, fn, **args):
        with self.assertRaises(exc_class) as ctx:
            self.call(fn, **args)
        self.assertIn(fragment, str(ctx.exception))
        return str(ctx.exception)

    def test_dispatch_table(self):
        self.assertEqual(sorted(XenAPIPlugin.table), ["get_domain", "pause", "set_vcpu_cap", "unpause"])

    def test_set_vcpu_cap_credit2(self):
        self.assertEqual(self.call("set_vcpu_cap", domid="5", cap="30"),
                         {"domid": "5", "cap": "30", "scheduler": "credit2"})
        self.assertEqual(self.xl_calls(), [["list", "5"], ["info"], ["sched-credit2", "-d", "5", "-c", "30"]])
        self.assertEqual(self.call("get_domain", domid="5"), {"domid": "5", "paused": False, "cap": 30})

    def test_set_vcpu_cap_credit(self):
        os.environ["FERRY_XL_SCHEDULER"] = "credit"
        self.assertEqual(self.call("set_vcpu_cap", domid="7", cap="0"),
                         {"domid": "7", "cap": "0", "scheduler": "credit"})
        self.assertEqual(self.xl_calls(), [["list", "7"], ["info"], ["sched-credit", "-d", "7", "-c", "0"]])

    def test_get_domain_credit(self):
        os.environ["FERRY_XL_SCHEDULER"] = "credit"
        self.seed(**{"7": {"cap": 50}})
        self.assertEqual(self.call("get_domain", domid="7"), {"domid": "7", "paused": False, "cap": 50})
        self.assertEqual(self.xl_calls(), [["list", "7"], ["info"], ["sched-credit", "-d", "7"]])

    def test_get_domain_scheduler_without_cap(self):
        os.environ["FERRY_XL_SCHEDULER"] = "rtds"
        self.assertEqual(self.call("get_domain", domid="5"), {"domid": "5", "paused": False, "cap": 0})
        self.assertEqual(self.xl_calls(), [["list", "5"], ["info"]])
        self.assertFails(plugin.XlError, "'rtds' has no per-domain cap", "set_vcpu_cap", domid="5", cap="10")

    def test_cap_bounded_by_vcpus(self):
        # The stand-in's domain has 2 vCPUs: 200 % is the most it can use.
        self.assertEqual(self.call("set_vcpu_cap", domid="5", cap="200")["cap"], "200")
        message = self.assertFails(plugin.ArgumentError, "from 0 to 200 for domid 5", "set_vcpu_cap", domid="5", cap="201")
        self.assertIn("'201'", message)
        self.assertNotIn(["sched-credit2", "-d", "5", "-c", "201"], self.xl_calls())

    def test_cap_ceiling_when_vcpus_unknown(self):
        self.seed(**{"5": {"vcpus": "-"}})
        self.assertEqual(self.call("set_vcpu_cap", domid="5", cap="6400")["cap"], "6400")
        self.assertFails(plugin.ArgumentError, "from 0 to 6400", "set_vcpu_cap", domid="5", cap="6401")

    def test_pause_then_unpause(self):
        self.assertEqual(self.call("pause", domid="5"), {"domid": "5", "paused": True})
        self.assertEqual(self.call("get_domain", domid="5"), {"domid": "5", "paused": True, "cap": 0})
        self.assertEqual(self.call("unpause", domid="5"), {"domid": "5", "paused": False})
        self.assertEqual(self.call("get_domain", domid="5")["paused"], False)
        self.assertEqual(self.xl_calls(), [
            ["pause", "5"],
            ["list", "5"], ["info"], ["sched-credit2", "-d", "5"],
            ["unpause", "5"],
            ["list", "5"], ["info"], ["sched-credit2", "-d", "5"],
        ])

    def test_domid_validation(self):
        for fn in ("set_vcpu_cap", "pause", "unpause", "get_domain"):
            self.assertFails(plugin.ArgumentError, "dom0 is never touched", fn, domid="0", cap="10")
            self.assertFails(plugin.ArgumentError, "decimal integer, got 'abc'", fn, domid="abc", cap="10")
            self.assertFails(plugin.ArgumentError, "decimal integer, got '-3'", fn, domid="-3", cap="10")
            self.assertFails(plugin.ArgumentError, "decimal integer, got ' 5'", fn, domid=" 5", cap="10")
            self.assertFails(plugin.ArgumentError, "got '32752'", fn, domid="32752", cap="10")
            self.assertFails(plugin.ArgumentError, "missing argument 'domid'", fn, cap="10")
        self.assertEqual(self.xl_calls(), [], "xl must not run on bad arguments")

    def test_cap_validation(self):
        self.assertFails(plugin.ArgumentError, "missing argument 'cap'", "set_vcpu_cap", domid="5")
        self.assertFails(plugin.ArgumentError, "missing argument 'cap'", "set_vcpu_cap", domid="5", cap="")
        self.assertFails(plugin.ArgumentError, "got 'thirty'", "set_vcpu_cap", domid="5", cap="thirty")
        self.assertFails(plugin.ArgumentError, "got '-1'", "set_vcpu_cap", domid="5", cap="-1")
        self.assertFails(plugin.ArgumentError, "got '12.5'", "set_vcpu_cap", domid="5", cap="12.5")
        self.assertFails(plugin.ArgumentError, "from 0 to 6400, got '6401'", "set_vcpu_cap", domid="5", cap="6401")
        self.assertEqual(self.xl_calls(), [])

    def test_domid_canonical(self):
        self.assertEqual(self.call("pause", domid="007"), {"domid": "7", "paused": True})
        self.assertEqual(self.xl_calls(), [["pause", "7"]])

    def test_xl_failure_names_the_domid(self):
        for fn in ("set_vcpu_cap", "pause", "unpause", "get_domain"):
            message = self.assertFails(plugin.XlError, "999", fn, domid="999", cap="10")
            self.assertIn("exit status 1", message)
            self.assertIn("unknown domain 999", message)

    def test_unpause_of_running_domain_fails(self):
        # Xen counts toolstack pauses and refuses an unpause with none outstanding.
        self.assertFails(plugin.XlError, "xl unpause 5 failed (exit status 1)", "unpause", domid="5")

    def test_xl_timeout(self):
        self.addCleanup(setattr, plugin, "XL_TIMEOUT_S", plugin.XL_TIMEOUT_S)
        slow = os.path.join(self.tmp, "bin")
        os.mkdir(slow)
        with open(os.path.join(slow, "xl"), "w") as f:
            f.write("#!/bin/sh\nexec sleep 5\n")
        os.chmod(os.path.join(slow, "xl"), 0o755)
        os.environ["PATH"] = slow + os.pathsep + os.environ["PATH"]
        plugin.XL_TIMEOUT_S = 0.2
        self.assertFails(plugin.XlError, "xl pause 5 timed out", "pause", domid="5")


if __name__ == "__main__":
    unittest.main()
