#!/usr/bin/python3
"""A respawner hook in Python, written from docs/writing-hooks.md section 9.

It does what examples/hooks/maintenance does in Go, and a little more:

  * Vetoer: while the file named by the option file= exists (default
    /run/respawner-maintenance), every restart is denied with the reason
    "FILE exists", so respawner holds the program down; remove the file
    and the next re-ask lets the restart through.
  * Notifier: each event it is told about is appended to the file named by
    event-log= as one JSON line, in the JSON form of docs/writing-hooks.md
    section 4; events= (default all) chooses the kinds.

respawner runs it through the launcher respawner-plugin-maintenance-py.
The stubs hooks_pb2.py and hooks_pb2_grpc.py come from gen.sh, into build/
beside this file. Debian packages: python3-grpcio, python3-protobuf,
python3-grpc-tools (for gen.sh) and python3-cryptography (for the
certificate). See README.md.
"""

import base64
import datetime
import json
import os
import signal
import sys
import tempfile
import threading
from concurrent import futures

VERSION = "1.0.0"
COOKIE_KEY = "RESPAWNER_PLUGIN"
COOKIE_VALUE = "981918aa70f0bc9f9515c53afdae916e"
PROTOCOL = 1  # the hook protocol this plugin speaks (pkg/hooks ProtocolVersion)
KINDS = ("starting", "started", "exited", "restart-pending", "held", "released",
         "restarting", "healthy", "unhealthy", "stopping", "stopped", "gave-up")

# Logging: one JSON object a line on stderr. go-plugin in respawner's hook
# host parses it: @level and @message must be strings, @timestamp (optional)
# must look like 2006-01-02T15:04:05.000000Z07:00, and every other key becomes
# a field of the line in respawner's log.
LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "off": 5}
min_level = LEVELS.get(os.environ.get("RESPAWNER_PLUGIN_LOG_LEVEL", "info"), 2)
log_lock = threading.Lock()


def log(level, message, **fields):
    if LEVELS[level] < min_level:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    line = {"@level": level, "@message": message,
            "@timestamp": now.isoformat(timespec="microseconds")}
    line.update(fields)
    with log_lock:
        sys.stderr.write(json.dumps(line, default=str) + "\n")
        sys.stderr.flush()


def fail(message):
    # Before the handshake, respawner puts the last lines of stderr into the
    # launch error, so plain text reaches the operator.
    sys.stderr.write("respawner-plugin-maintenance-py: " + message + "\n")
    sys.exit(1)


if os.environ.get(COOKIE_KEY) != COOKIE_VALUE:
    fail("this is a respawner hook plugin; it is started by respawner "
         "(respawner start --plugin maintenance-py ...), not by hand")

here = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.join(here, "build"))
try:
    import grpc
    import hooks_pb2
    import hooks_pb2_grpc
except ImportError as e:
    fail(f"{e}: install python3-grpcio, and run gen.sh to make {here}/build")


class Config:
    """The options of one Configure call."""

    def __init__(self, options):
        values = {}
        for o in options:  # sorted by key; a repeated key keeps its order
            values.setdefault(o.key, []).append(o.value)
        problems = []

        def one(key, default):
            v = values.pop(key, None)
            if v is None:
                return default
            if len(v) > 1:
                problems.append(f"option {key}: given {len(v)} times")
            return v[-1]

        self.file = one("file", "/run/respawner-maintenance")
        self.event_log = one("event-log", "")
        events = one("events", "all")
        # timeout= is respawner's (each call's deadline) and is passed on;
        # like the Go SDK, accept it. sha256= is never passed.
        one("timeout", "")
        self.events = []
        if events != "all":
            for k in (s.strip() for s in events.split(",")):
                if k not in KINDS:
                    problems.append(f"option events: unknown kind {json.dumps(k)}")
                elif k not in self.events:
                    self.events.append(k)
        if not self.file:
            problems.append("option file: empty")
        for key in sorted(values):
            problems.append(f"unknown option {json.dumps(key)}")
        self.problems = problems


class Hook(hooks_pb2_grpc.HookServicer):
    """The Hook service. Notify calls arrive one at a time; RestartPending may
    run beside them, so the configuration is swapped under a lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.config = Config([])

    def Info(self, request, context):
        # May come without Configure (respawner plugins): answer from the
        # defaults. events empty means all kinds. configure tells respawner
        # that this plugin takes options; respawner calls Configure anyway.
        with self.lock:
            events = list(self.config.events)
        return hooks_pb2.InfoResponse(version=VERSION, events=events, configure=True,
                                      notify=True, restart_pending=True, probe=False)

    def Configure(self, request, context):
        config = Config(request.options)
        if config.problems:
            # Becomes "plugin maintenance-py: configure: ..." and exit 1.
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(config.problems))
        with self.lock:
            self.config = config
        log("info", "configured", file=config.file, event_log=config.event_log)
        return hooks_pb2.ConfigureResponse()  # no probe: leave probe unset

    def RestartPending(self, request, context):
        with self.lock:
            file = self.config.file
        if os.path.exists(file):
            return hooks_pb2.RestartPendingResponse(verdict=hooks_pb2.Verdict(
                decision=hooks_pb2.DECISION_DENY, reason=file + " exists"))
        return hooks_pb2.RestartPendingResponse(verdict=hooks_pb2.Verdict(
            decision=hooks_pb2.DECISION_ALLOW))

    def Notify(self, request, context):
        with self.lock:
            path = self.config.event_log
        line = json.dumps(event_json(request.event), separators=(",", ":"))
        if not path:
            log("info", "program event", event=line)
            return hooks_pb2.NotifyResponse()
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as e:
            # respawner logs it as "notify failed" and carries on.
            context.abort(grpc.StatusCode.INTERNAL, f"event-log: {e}")
        return hooks_pb2.NotifyResponse()

    def Probe(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "this plugin has no probe")


def event_json(ev):
    """The JSON form of an event (docs/writing-hooks.md section 4), which
    Go's hooks.Event marshals to: every field, always."""
    return {
        "kind": ev.kind, "instance": ev.instance, "program": ev.program,
        "args": list(ev.args), "pid": ev.pid, "time": rfc3339(ev.time_unix_nano),
        "exit_code": ev.exit_code, "signal": ev.signal,
        "uptime_ms": -(-ev.uptime_nanos // 1_000_000),  # rounded up, as Go's
        "attempt": ev.attempt, "limit": ev.limit, "reason": ev.reason,
        "clean": ev.clean, "output": list(ev.output), "host": ev.host,
    }


def rfc3339(nanos):
    if nanos == 0:
        return "0001-01-01T00:00:00Z"  # Go's zero time.Time
    sec, ns = divmod(nanos, 1_000_000_000)
    t = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc)
    frac = f".{ns:09d}".rstrip("0") if ns else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def controller(stop):
    """go-plugin's plugin.GRPCController service. respawner calls Shutdown
    when it ends the plugin, then closes the connection and waits 2 s for the
    process to exit before it SIGKILLs it. The request and the response are
    the empty message plugin.Empty, zero bytes on the wire, so no stubs are
    needed."""

    def shutdown(request, context):
        stop.set()  # main() stops the server and exits once this has answered
        return b""

    return grpc.method_handlers_generic_handler("plugin.GRPCController", {
        "Shutdown": grpc.unary_unary_rpc_method_handler(
            shutdown, request_deserializer=lambda b: b, response_serializer=lambda b: b),
    })


def certificate():
    """A self-signed certificate for DNS name localhost, a CA with server and
    client auth usages, as go-plugin's own (mtls.go). Returns the key and
    the certificate in PEM, and the certificate in DER."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(seconds=30))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True, key_agreement=True,
                key_cert_sign=True, content_commitment=False, data_encipherment=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), \
        cert.public_bytes(serialization.Encoding.DER)


def main():
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "").split(",")
    if str(PROTOCOL) not in versions:
        # Answer with our version anyway, as go-plugin does: respawner then
        # refuses the plugin with "plugin speaks hook protocol 1, respawner
        # speaks N", which says what is wrong.
        log("warn", "respawner does not speak this plugin's hook protocol",
            plugin=PROTOCOL, respawner=",".join(versions))
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    if not client_cert:
        fail("PLUGIN_CLIENT_CERT is not set (respawner always sets it: AutoMTLS)")
    key_pem, cert_pem, cert_der = certificate()

    # The socket goes into PLUGIN_UNIX_SOCKET_DIR, a directory respawner made
    # for this plugin and removes once the plugin is gone, even after a
    # SIGKILL. Without it, make a directory of our own and remove it at exit.
    sock_dir = os.environ.get("PLUGIN_UNIX_SOCKET_DIR", "")
    own_dir = not sock_dir
    if own_dir:
        sock_dir = tempfile.mkdtemp(prefix="respawner-plugin-")
    sock = os.path.join(sock_dir, f"maintenance-py.{os.getpid()}.sock")

    stop = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    hooks_pb2_grpc.add_HookServicer_to_server(Hook(), server)
    server.add_generic_rpc_handlers((controller(stop),))
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)],
                                        root_certificates=client_cert.encode(),
                                        require_client_auth=True)
    if server.add_secure_port("unix:" + sock, creds) == 0:
        fail(f"cannot listen on {sock}")
    server.start()

    # SIGTERM or SIGINT (someone else's) end the plugin as Shutdown does.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    # The handshake: one line, CORE|PROTOCOL|NETWORK|ADDRESS|grpc|CERT, the
    # certificate as DER in base64 without padding. flush: Python
    # block-buffers a pipe, and respawner waits 10 s for this line before it
    # gives up ("timeout while waiting for plugin to start").
    der = base64.b64encode(cert_der).decode().rstrip("=")
    print(f"1|{PROTOCOL}|unix|{sock}|grpc|{der}", flush=True)
    # Nothing after the handshake on stdout is read; point stdout (this
    # process's and its children's) at stderr so that a stray print() reaches
    # respawner's log, as plain text at debug level, instead of vanishing.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    log("debug", "serving", address=sock, pid=os.getpid())

    stop.wait()
    server.stop(grace=1).wait()  # the Shutdown answer is sent first
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    if own_dir:
        os.rmdir(sock_dir)
    log("debug", "stopped")


if __name__ == "__main__":
    main()
