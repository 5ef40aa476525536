"""fake-conmon's gRPC face: the conmon.v1 Conmon service, only adapting ``fake_conmon.rpc.Conmon`` (request
in, answer out, errors to status codes)."""

from __future__ import annotations

from cristack.wire.pb.conmon.v1 import conmon_pb2_grpc as cgrpc
from cristack.wire.servicer import servicer_for
from fake_conmon.rpc import Conmon

ConmonService = servicer_for(cgrpc.ConmonServicer, Conmon, "fake-conmon")
