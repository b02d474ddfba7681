"""AMQPS through pika (warren only: the shared RabbitMQ has no TLS listener).

Each test module run makes a CA and certificates with `cryptography`, starts
its own warren with a TLS listener, and connects with pika's SSLOptions.
"""

import datetime
import os
import shutil
import socket
import ssl
import tempfile

import pika
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import REPO_ROOT, STARTUP_TIMEOUT, _WarrenProcess

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("AMQP_URL")), reason="TLS tests start their own warren")

NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Ca:
    def __init__(self, cn):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def leaf(self, cn, dns=(), expired=False):
        key = ec.generate_private_key(ec.SECP256R1())
        start = NOW - datetime.timedelta(days=400 if expired else 1)
        end = NOW - datetime.timedelta(days=300) if expired else NOW + datetime.timedelta(days=30)
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
        )
        if dns:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]),
                                critical=False)
        return key, b.sign(self.key, hashes.SHA256())


def _write(path, key=None, cert=None):
    with open(path, "wb") as f:
        if key is not None:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        if cert is not None:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    return path


class Pki:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="warren-tls-py-")
        self.ca = Ca("py-test-ca")
        skey, scert = self.ca.leaf("localhost", dns=["localhost"])
        self.server_key = _write(self.p("key.pem"), key=skey)
        self.server_cert = _write(self.p("cert.pem"), cert=scert)
        self.ca_file = _write(self.p("ca.pem"), cert=self.ca.cert)
        self.guest = self.client("guest", self.ca)
        self.rogue = self.client("guest", Ca("rogue-ca"), "rogue")
        self.expired = self.client("guest", self.ca, "expired", expired=True)

    def p(self, name):
        return os.path.join(self.dir, name)

    def client(self, cn, ca, tag=None, expired=False):
        key, cert = ca.leaf(cn, expired=expired)
        tag = tag or cn
        return (_write(self.p(f"{tag}-cert.pem"), cert=cert),
                _write(self.p(f"{tag}-key.pem"), key=key))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_broker():
    binary = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "target", "debug", "warren"))
    if not os.path.isabs(binary):
        binary = os.path.join(REPO_ROOT, binary)
    pki = Pki()
    tls_port = _free_port()
    wp = _WarrenProcess(binary, [
        "--tls-port", str(tls_port), "--tls-cert-file", pki.server_cert,
        "--tls-key-file", pki.server_key, "--tls-ca-file", pki.ca_file,
        "--tls-verify-peer", "true", "--tls-fail-if-no-peer-cert", "true"])
    try:
        port = wp.wait_port(STARTUP_TIMEOUT)
        yield pki, port, tls_port
    finally:
        wp.stop()
        shutil.rmtree(wp.tmpdir, ignore_errors=True)
        shutil.rmtree(pki.dir, ignore_errors=True)


def _params(port, pki, client=None, credentials=None, tls=True):
    kw = dict(host="localhost", port=port, socket_timeout=5, connection_attempts=1,
              credentials=credentials or pika.PlainCredentials("guest", "guest"))
    if tls:
        ctx = ssl.create_default_context(cafile=pki.ca_file)
        if client:
            ctx.load_cert_chain(client[0], client[1])
        kw["ssl_options"] = pika.SSLOptions(ctx, "localhost")
    return pika.ConnectionParameters(**kw)


def _round_trip(conn, n=20):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(n):
        ch.basic_publish("", q, f"m{i}".encode())
    got = []
    for _ in range(n):
        _, _, body = ch.basic_get(q, auto_ack=True)
        got.append(body)
    assert got == [f"m{i}".encode() for i in range(n)]
    ch.close()


def test_pika_tls_with_client_certificate_plain_and_external(tls_broker):
    pki, _, tls_port = tls_broker
    plain = pika.BlockingConnection(_params(tls_port, pki, pki.guest))
    external = pika.BlockingConnection(
        _params(tls_port, pki, pki.guest, credentials=pika.credentials.ExternalCredentials()))
    _round_trip(plain)
    _round_trip(external)
    # Consume a burst over TLS (the writer's batched path).
    ch = external.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(1000):
        ch.basic_publish("", q, b"x" * 500)
    n = 0
    for _, _, body in ch.consume(q, auto_ack=True, inactivity_timeout=5):
        assert body == b"x" * 500
        n += 1
        if n == 1000:
            break
    assert n == 1000
    ch.cancel()
    plain.close()
    external.close()


@pytest.mark.parametrize("which", ["none", "rogue", "expired"])
def test_bad_or_missing_client_certificate_refused(tls_broker, which):
    pki, _, tls_port = tls_broker
    keep = pika.BlockingConnection(_params(tls_port, pki, pki.guest))
    client = {"none": None, "rogue": pki.rogue, "expired": pki.expired}[which]
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(_params(tls_port, pki, client))
    _round_trip(keep, 3)
    keep.close()


def test_wrong_protocol_on_each_port(tls_broker):
    pki, port, tls_port = tls_broker
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(_params(tls_port, pki, tls=False))
    # The plain port answers the ClientHello with the AMQP header and
    # closes: the TLS handshake fails at once.
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(_params(port, pki, pki.guest))
    ok = pika.BlockingConnection(_params(port, pki, tls=False))
    _round_trip(ok, 3)
    ok.close()
    ok = pika.BlockingConnection(_params(tls_port, pki, pki.guest))
    _round_trip(ok, 3)
    ok.close()
