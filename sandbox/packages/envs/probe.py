import json, os, platform, sys
import importlib.metadata as md


def tags():
    for mod in ("packaging.tags", "pip._vendor.packaging.tags"):
        try:
            m = __import__(mod, fromlist=["sys_tags"])
            return [str(t) for t in m.sys_tags()]
        except Exception:
            pass
    return []


def impl_version():
    v = sys.implementation.version
    s = "%d.%d.%d" % (v.major, v.minor, v.micro)
    if v.releaselevel != "final":
        s += v.releaselevel[0] + str(v.serial)
    return s


dists = []
for d in md.distributions():
    try:
        name, version = d.metadata["Name"], d.version
    except Exception:
        continue
    if name and version:
        dists.append([name, version])

print(json.dumps({
    "probe": 1,
    "python": platform.python_version(),
    "markers": {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version(),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
    "tags": tags(),
    "distributions": dists,
}))
