"""Registry requests as containerd v2.4.2's docker resolver and fetcher make them (core/remotes/docker
resolver.go, fetcher.go, auth/fetch.go, config/hosts.go), against the pretend registries of cristack's
catalogue: no request leaves the process, but each one containerd would send is a span and its log lines.

- Hosts (config/hosts.go ConfigureHosts): with ``registry.config_path``, ``<config_path>/<host>/hosts.toml``
  lists the endpoints to try, each ``[host."URL"]`` in order and then ``server`` (``loading host directory``
  at debug). Without one: docker.io is ``https://registry-1.docker.io``, a loopback host with a port plain
  ``http``, any other ``https``; the path is ``/v2``.
- Resolve: ``HEAD <host>/v2/<repo>/manifests/<tag or digest>`` per endpoint until one answers 200; a 404 makes
  the next endpoint be tried (``trying next host after status: 404 Not Found``), the last one's 404 ends it
  (``fetch failed after status``): "not found". Docker Hub answers an anonymous request 401 with a token
  challenge: the token is fetched (``remotes.docker.resolver.FetchToken``) and the request sent again, as
  the docker authorizer does; an unknown repository stays 401 (pull access denied). A host that does not
  resolve fails the request with the dial error.
- Fetch: ``GET .../manifests/<digest>`` and ``GET .../blobs/<digest>`` for the config and each layer.
- Each request is an otelhttp CLIENT span ``remotes.docker.resolver.HTTPRequest`` (``http.request.method``,
  ``url.full``, ``server.address``, ``server.port`` when the URL names one, ``network.protocol.version``,
  ``http.response.status_code``; 4xx/5xx: ERROR with ``error.type`` the code).

Response bodies and headers are those our catalogue implies (digests, sizes, media types); the ``server`` and
``date`` headers are what a registry would send. A request takes a share of the pull latency, sized by what it
transfers.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind, Status, StatusCode

from cristack.images.catalogue import CatalogImage, ImageNotFound, Reference, registry_of
from cristack.otel.spans import current_span
from fake_containerd.tracing import ContainerdTracing

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

USER_AGENT = "containerd/v2.4.2"
MANIFEST_ACCEPT = ("application/vnd.docker.distribution.manifest.v2+json, "
                   "application/vnd.docker.distribution.manifest.list.v2+json, "
                   "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*")
ACCEPT_ENCODING = "zstd;q=1.0, gzip;q=0.8, deflate;q=0.5"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_SIZE_BASE = 200  # a manifest's JSON: this plus about 150 bytes per descriptor
MAX_HOSTS_TOML = 1 << 20
SERVER_HEADER = "registry/2.0"
TOKEN_HOSTS = {"registry-1.docker.io": "https://auth.docker.io/token"}  # registries that want a bearer token


@dataclass(frozen=True)
class Endpoint:
    """One RegistryHost: where requests for a registry go."""

    scheme: str
    host: str  # host[:port]
    path: str = "/v2"

    def url(self, suffix: str) -> str:
        return f"{self.scheme}://{self.host}{self.path}{suffix}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


def _loopback_with_port(host: str) -> bool:
    name, _, port = host.rpartition(":")
    name = name or host
    try:
        loop = ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        loop = name == "localhost"
    return loop and bool(port) and port.isdigit() and port != "443"


def endpoints(registry: str, config_path: Path | None) -> list[Endpoint]:
    """config/hosts.go: the endpoints for ``registry``, from its hosts.toml when there is one."""
    hosts: list[Endpoint] = []
    if config_path is not None:
        host_dir = config_path / registry
        toml = host_dir / "hosts.toml"
        if host_dir.is_dir():
            log.debug("loading host directory", extra={"fields": {"dir": str(host_dir)}})
            if toml.is_file():
                hosts = _hosts_toml(toml)
    if hosts:
        return hosts
    if registry == "docker.io":
        return [Endpoint("https", "registry-1.docker.io")]
    return [Endpoint("http" if _loopback_with_port(registry) else "https", registry)]


def _hosts_toml(path: Path) -> list[Endpoint]:
    """``[host."URL"]`` tables in order, then ``server``; a file that cannot be read or parsed gives none (the
    registry's defaults then apply)."""
    try:
        data = path.read_bytes()[:MAX_HOSTS_TOML + 1]
        if len(data) > MAX_HOSTS_TOML:
            raise ValueError("too big")
        doc = tomllib.loads(data.decode())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        log.warning("%s: cannot read: %s", path, err)
        return []
    out = [_endpoint(url) for url in (doc.get("host") or {}) if isinstance(url, str)]
    server = doc.get("server")
    if isinstance(server, str) and server:
        out.append(_endpoint(server))
    return [e for e in out if e is not None]


def _endpoint(url: str) -> Endpoint | None:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    path = parts.path.rstrip("/") or "/v2"
    return Endpoint(parts.scheme, parts.netloc, path if path.endswith("/v2") else f"{path}/v2")


def repository_path(ref: Reference) -> str:
    """The repository as the registry's API names it (docker.io's official images under ``library/``)."""
    return ref.repo.split("/", 1)[1]


class RegistryError(Exception):
    """A registry refused: ``status`` (404, 401) or None for a host that could not be reached; ``not_found``
    is containerd's errdefs.ErrNotFound (the CRI answers NOT_FOUND), anything else is UNKNOWN."""

    def __init__(self, message: str, status: int | None, not_found: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.not_found = not_found


class Registry:
    """The docker resolver and fetcher against the catalogue. ``lookup`` names what the registries hold."""

    def __init__(self, tracing: ContainerdTracing, config_path: Path | None, lookup, latency_s: float) -> None:  # noqa: ANN001
        self.tracing = tracing
        self.config_path = config_path
        self.lookup = lookup
        self.latency_s = latency_s
        self._tokens: set[str] = set()

    async def _request(self, method: str, url: str, *, status: int, headers: dict[str, str],
                       size: int = 0, total: int = 1, extra: dict | None = None,
                       error: str = "") -> int:
        """One HTTP request in otelhttp's CLIENT span; ``status`` is what the registry answers (0: no answer)."""
        parts = urlsplit(url)
        attrs: dict = {"http.request.method": method, "url.full": url, "server.address": parts.hostname}
        if parts.port:
            attrs["server.port"] = parts.port
        fields = {"request.method": method, "request.header.user-agent": USER_AGENT, **(extra or {}), "url": url}
        log.debug("do request", extra={"fields": fields})
        with current_span(self.tracing.http, "remotes.docker.resolver.HTTPRequest", kind=SpanKind.CLIENT,
                          attributes=attrs) as span:
            if self.latency_s:
                await asyncio.sleep(self.latency_s * max(size, 1) / max(total, 1))
            if not status:
                span.set_status(Status(StatusCode.ERROR, error))
                span.set_attribute("error.type", "*net.OpError")
                return 0
            span.set_attributes({"network.protocol.version": "1.1", "http.response.status_code": status})
            if status >= 400:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        if status < 400:
            log.debug("fetch response received", extra={"fields": {
                **{k: v for k, v in fields.items() if not k.startswith("request.")},
                **{f"response.header.{k}": v for k, v in headers.items()},
                "response.header.server": SERVER_HEADER,
                "response.header.date": email.utils.formatdate(usegmt=True),
                "response.header.docker-distribution-api-version": "registry/2.0",
                "response.status": f"{status} OK"}})
        return status

    async def _authorized(self, method: str, url: str, host: str, **kw) -> int:  # noqa: ANN003
        """A request, with Docker Hub's token dance the first time (auth/fetch.go FetchToken)."""
        token_url = TOKEN_HOSTS.get(host)
        if token_url is not None and host not in self._tokens:
            await self._request(method, url, **{**kw, "status": 401, "headers": {}})
            log.debug("Unauthorized", extra={"fields": {"header": f'Bearer realm="{token_url}",service='
                                                                  '"registry.docker.io"'}})
            with current_span(self.tracing.http, "remotes.docker.resolver.FetchToken", kind=SpanKind.CLIENT,
                              attributes={"http.request.method": "GET", "url.full": token_url,
                                          "server.address": urlsplit(token_url).hostname}) as span:
                span.set_attributes({"network.protocol.version": "1.1", "http.response.status_code": 200})
            self._tokens.add(host)
        return await self._request(method, url, **kw)

    async def resolve(self, ref: Reference) -> tuple[CatalogImage, Descriptor, Endpoint]:
        """resolver.Resolve: HEAD the manifest on each endpoint in turn."""
        registry = registry_of(ref.repo)
        hosts = endpoints(registry, self.config_path)
        endpoints(registry, self.config_path)  # the fetcher asks for the hosts again (its own log line)
        suffix = f"/{repository_path(ref)}/manifests/{ref.digest or ref.tag}"
        try:
            img, _ = self.lookup(str(ref))
            status = 200
        except ImageNotFound as missing:
            img, status = None, missing.status or 0
        for i, ep in enumerate(hosts):
            url = ep.url(suffix)
            fields = {"host": ep.host, "method": "HEAD", "url": url}
            log.debug("resolving", extra={"fields": fields})
            request_fields = {**fields, "request.header.accept": MANIFEST_ACCEPT}
            if not status:
                await self._request("HEAD", url, status=0, headers={}, extra=request_fields,
                                    error=f"dial tcp: lookup {ep.host.split(':')[0]}: no such host")
                raise RegistryError(f"failed to resolve reference \"{ref}\": failed to do request: Head \"{url}\": "
                                    f"dial tcp: lookup {ep.host.split(':')[0]}: no such host", None)
            desc = Descriptor(MANIFEST, img.digest, manifest_size(img)) if img is not None else None
            headers = {"content-type": MANIFEST, "content-length": str(desc.size),
                       "docker-content-digest": desc.digest} if desc is not None else {}
            answered = await self._authorized("HEAD", url, ep.host, status=status, headers=headers,
                                              extra=request_fields, size=0, total=1)
            last = i == len(hosts) - 1
            if answered == 200 and desc is not None:
                log.debug("resolved", extra={"fields": {**fields, "desc.digest": desc.digest}})
                return img, desc, ep
            word = {404: "404 Not Found", 401: "401 Unauthorized"}.get(answered, str(answered))
            log.info("%s after status: %s", "fetch failed" if last else "trying next host", word,
                     extra={"fields": fields})
            if last and answered == 401:
                raise RegistryError(f"failed to resolve reference \"{ref}\": pull access denied, repository does "
                                    "not exist or may require authorization: server message: insufficient_scope: "
                                    "authorization failed", 401)
        raise RegistryError(f"{ref}: not found", 404, not_found=True)

    async def fetch(self, ep: Endpoint, ref: Reference, desc: Descriptor, total: int) -> None:
        """fetcher.Fetch: GET a manifest or blob by digest (the span goes under the current one)."""
        kind = "manifests" if desc.media_type == MANIFEST else "blobs"
        url = ep.url(f"/{repository_path(ref)}/{kind}/{desc.digest}")
        fields = {"digest": desc.digest, "mediatype": desc.media_type, "size": desc.size}
        log.debug("fetch", extra={"fields": fields})
        log.debug("fetching layer", extra={"fields": {**fields, "initial_parallelism": 3, "parallelism": 1,
                                                      "chunk_size": 0, "offset": 0}})
        accept = f"{desc.media_type}, */*"
        await self._request("GET", url, status=200, size=desc.size, total=total,
                            extra={**fields, "request.header.accept": accept,
                                   "request.header.accept-encoding": ACCEPT_ENCODING},
                            headers={"content-type": desc.media_type if kind == "manifests" else
                                     "application/octet-stream", "content-length": str(desc.size),
                                     "docker-content-digest": desc.digest})


def manifest_size(img: CatalogImage) -> int:
    return MANIFEST_SIZE_BASE + 150 * (1 + img.layers)

