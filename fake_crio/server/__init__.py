"""fake-crio's CRI server, laid out as CRI-O's ``server/`` is: one module per call or family, each named after
the ``server/*.go`` file it models, adding its calls to ``Server`` (``server.py`` holds the state and the steps
the calls share). ``grpc_service`` adapts it to the gRPC RuntimeService and ImageService."""

from __future__ import annotations

from fake_crio.server.container_create import ContainerCreate
from fake_crio.server.container_events import ContainerEventsCall
from fake_crio.server.container_execsync import ContainerExecSync
from fake_crio.server.container_list import ContainerList
from fake_crio.server.container_remove import ContainerRemove
from fake_crio.server.container_reopen_log import ContainerReopenLog
from fake_crio.server.container_start import ContainerStart
from fake_crio.server.container_stats_list import ContainerStatsList
from fake_crio.server.container_status import ContainerStatus
from fake_crio.server.container_stop import ContainerStop
from fake_crio.server.container_update_resources import ContainerUpdateResources
from fake_crio.server.image_fs_info import ImageFsInfo
from fake_crio.server.image_list import ImageList
from fake_crio.server.image_pull import ImagePull
from fake_crio.server.image_remove import ImageRemove
from fake_crio.server.image_status import ImageStatus
from fake_crio.server.runtime_config import RuntimeConfig
from fake_crio.server.runtime_status import RuntimeStatus
from fake_crio.server.sandbox_list import SandboxList
from fake_crio.server.sandbox_remove import SandboxRemove
from fake_crio.server.sandbox_run import SandboxRun
from fake_crio.server.sandbox_status import SandboxStatus
from fake_crio.server.sandbox_stop import SandboxStop
from fake_crio.server.server import ServerBase
from fake_crio.server.update_runtime_config import UpdateRuntimeConfig
from fake_crio.server.version import Version


class Server(Version, RuntimeStatus, RuntimeConfig, UpdateRuntimeConfig, ContainerEventsCall,
             SandboxRun, SandboxStop, SandboxRemove, SandboxStatus, SandboxList,
             ContainerCreate, ContainerStart, ContainerRemove, ContainerStop, ContainerStatus, ContainerList,
             ContainerUpdateResources, ContainerExecSync, ContainerReopenLog, ContainerStatsList,
             ImageList, ImageStatus, ImagePull, ImageRemove, ImageFsInfo, ServerBase):
    """Both CRI services' calls over one state, as CRI-O's ``Server`` serves both (``Server.create``)."""


__all__ = ["Server"]
