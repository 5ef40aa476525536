# One image for fake-kubelet, fake-crio, fake-conmon and fake-containerd (compose picks the command), plus the
# real crictl for `docker compose exec crio crictl ...`.

# crictl, built from the Go module proxy with the same pin as `make tools`.
FROM golang:1.26-bookworm AS crictl
COPY tools/crictl /src/tools/crictl
RUN cd /src/tools/crictl && CGO_ENABLED=0 GOBIN=/out go install sigs.k8s.io/cri-tools/cmd/crictl

# The Python package, installed into a virtualenv that the final stage copies as is.
FROM python:3.12.8-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cristack ./cristack
COPY fake_crio ./fake_crio
COPY fake_conmon ./fake_conmon
COPY fake_kubelet ./fake_kubelet
COPY fake_kata ./fake_kata
COPY fake_containerd ./fake_containerd
# cristack/examples links here: the demo's and scenarios' package data.
COPY examples ./examples
RUN python -m venv /opt/cristack && /opt/cristack/bin/pip install --no-cache-dir .

# The runtime image: no compilers, no pip caches, a non-root user.
FROM python:3.12.8-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/cristack --create-home cristack \
 && mkdir -p /run/cristack /var/log/pods /var/run/crio /var/lib/crio /etc/kubernetes/manifests \
            /var/lib/containerd /run/containerd \
 && chown -R cristack:cristack /run/cristack /var/log/pods /var/run/crio /var/lib/crio /var/lib/cristack \
            /var/lib/containerd /run/containerd \
 && chmod 0700 /run/cristack
COPY --from=build /opt/cristack /opt/cristack
COPY --from=crictl /out/crictl /usr/local/bin/crictl
COPY deploy/compose/crictl.yaml /etc/crictl.yaml
ENV PATH=/opt/cristack/bin:$PATH PYTHONUNBUFFERED=1
USER cristack
WORKDIR /var/lib/cristack
CMD ["cristack", "--help"]
