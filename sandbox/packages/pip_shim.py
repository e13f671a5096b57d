#!__PYTHON__
# Written by sandboxd. Packages install only from this sandbox's package
# cache, filtered by the allow-list; this wrapper only explains a refusal
# before pip would (with "No matching distribution"), then runs the real
# pip unchanged. `python -m pip` skips it; the filtering still applies.
import os
import re
import sys

ALLOW_LIST = __ALLOW_LIST__

# Options of pip (global and install) that take a value as the next
# argument, so that value is not mistaken for a requirement.
VALUE_OPTIONS = {
    "--abi", "--cache-dir", "--cert", "--client-cert", "--config-settings",
    "--exists-action", "--global-option", "--implementation",
    "--install-option", "--keyring-provider", "--log", "--platform",
    "--prefix", "--progress-bar", "--proxy", "--python", "--python-version",
    "--report", "--retries", "--root", "--root-user-action", "--src",
    "--target", "--timeout", "--trusted-host", "--upgrade-strategy",
    "--no-binary", "--only-binary", "-t", "-C",
}
# With another source or a requirements file, pip alone decides.
SOURCE_OPTIONS = {
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable",
}
NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requested(args):
    """The requirements of a plain `pip install`, or None to stay out."""
    command, reqs, skip = None, [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            opt = arg.split("=", 1)[0]
            if opt in SOURCE_OPTIONS or (opt[:2] in SOURCE_OPTIONS and not opt.startswith("--")):
                return None
            skip = opt in VALUE_OPTIONS and "=" not in arg
            continue
        if command is None:
            command = arg
            continue
        if any(c in arg for c in "/\\:") or arg.startswith("."):
            return None  # a path or URL
        reqs.append(arg)
    return reqs if command == "install" else None


def read_list():
    allowed = {}
    with open(ALLOW_LIST, encoding="utf-8") as f:
        for line in f:
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            m = NAME.match(line)
            if m:
                allowed[normalize(m.group(1))] = line
    return allowed


def pinned_version(req):
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        return None
    try:
        specs = list(Requirement(req).specifier)
    except Exception:
        return None
    if len(specs) == 1 and specs[0].operator == "==" and not specs[0].version.endswith(".*"):
        return specs[0].version
    return None


def installed(req):
    """Whether the environment already meets req (pip will say so)."""
    try:
        from importlib.metadata import version
        from pip._vendor.packaging.requirements import Requirement
        r = Requirement(req)
        return r.specifier.contains(version(r.name), prereleases=True)
    except Exception:
        return False


def refusal(req, allowed):
    m = NAME.match(req)
    if not m or installed(req):
        return None
    name = m.group(1)
    line = allowed.get(normalize(name))
    if line is None:
        return "%s is not on this sandbox's package allow-list" % name
    version = pinned_version(req)
    if version is None:
        return None
    try:
        from pip._vendor.packaging.requirements import Requirement
        if Requirement(line).specifier.contains(version, prereleases=True):
            return None
    except Exception:
        return None
    return "%s %s is not allowed by this sandbox's package allow-list (it says %s)" % (name, version, line)


def main():
    args = sys.argv[1:]
    reqs = requested(args)
    if reqs:
        try:
            allowed = read_list()
        except OSError:
            allowed = None
        if allowed is not None:
            refused = [r for r in (refusal(q, allowed) for q in reqs) if r]
            if refused:
                for r in refused:
                    print("ERROR: " + r + ".", file=sys.stderr)
                print("Allowed packages: %s (see %s)." % (", ".join(sorted(allowed)) or "none", ALLOW_LIST), file=sys.stderr)
                sys.exit(1)
    os.execv(sys.executable, [sys.executable, "-m", "pip"] + args)


if __name__ == "__main__":
    main()
