"""The API server's validation of the Pod fields fake-kubelet acts on, as the real kubelet applies it to
every static pod (pkg/kubelet/config/common.go ``tryDecodeSinglePod`` -> ``validation.ValidatePodCreate``;
refused with "invalid pod: ...").

Rules and wording from k8s.io/apimachinery v0.36 (``pkg/api/validate/content``: DNS-1123 names, label
keys and values; ``pkg/api/validation/objectmeta.go``: ``ValidateAnnotations``, whose total is capped at
``TotalAnnotationSizeLimitB``, 256 KiB) and k8s.io/kubernetes v1.36.3 ``pkg/apis/core/validation``
(container names are DNS-1123 labels, env names are printable ASCII without '=' since
RelaxedEnvironmentVariableValidation went GA in 1.34). One difference: upstream echoes a bad value whole
(field.Invalid, ``%q``); here it is cut (cristack.wording.shown), so a 4 MiB value never reaches a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cristack.wording import shown

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_KEY_NAME_MAX = 63
LABEL_VALUE_MAX = 63
TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * 1024

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = f"({_LABEL_KEY_FMT})?"
_DNS1123_LABEL = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_LABEL_KEY = re.compile(f"^{_LABEL_KEY_FMT}$")
_LABEL_VALUE = re.compile(f"^{_LABEL_VALUE_FMT}$")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown_examples = " or ".join(f"'{e}'" for e in examples)
    return f"{msg} (e.g. {shown_examples}, regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def _length_and_format(value: str, limit: int, pattern: re.Pattern[str], fmt: str, msg: str,
                       *examples: str) -> list[str]:
    """The two checks apimachinery's ``Is*`` functions make, each with its own error: at most ``limit``
    characters, then the format."""
    errs = [_max_len(limit)] if len(value) > limit else []
    if not pattern.match(value):
        errs.append(_regex_error(msg, fmt, *examples))
    return errs


def dns1123_label(value: str) -> list[str]:
    """``IsDNS1123Label``."""
    errs = [_max_len(DNS1123_LABEL_MAX)] if len(value) > DNS1123_LABEL_MAX else []
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                                     "or '-', and must start and end with an alphanumeric character",
                                     _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    """``IsDNS1123Subdomain``."""
    return _length_and_format(value, DNS1123_SUBDOMAIN_MAX, _DNS1123_SUBDOMAIN, _DNS1123_SUBDOMAIN_FMT,
                              "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                              "'-' or '.', and must start and end with an alphanumeric character", "example.com")


_LABEL_KEY_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an " \
                 "alphanumeric character"


def qualified_name(value: str) -> list[str]:
    """``IsLabelKey`` (``IsQualifiedName``): an optional DNS subdomain prefix and '/', then a name part."""
    parts = value.split("/")
    errs: list[str] = []
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += [f"prefix part {m}" for m in dns1123_subdomain(prefix)]
    else:
        return ["a valid label key " + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > LABEL_KEY_NAME_MAX:
        errs.append("name part " + _max_len(LABEL_KEY_NAME_MAX))
    if not _LABEL_KEY.match(name):
        errs.append("name part " + _regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value(value: str) -> list[str]:
    """``IsLabelValue``."""
    return _length_and_format(value, LABEL_VALUE_MAX, _LABEL_VALUE, _LABEL_VALUE_FMT,
                              "a valid label must be an empty string or consist of alphanumeric characters, '-', "
                              "'_' or '.', and must start and end with an alphanumeric character",
                              "MyValue", "my_value", "12345")


def env_var_name(value: str) -> list[str]:
    """``IsRelaxedEnvVarName``."""
    if not value:
        return ["environment variable name must be non-empty"]
    if any(not (0x20 <= ord(ch) < 0x7f) or ch == "=" for ch in value):
        return ["a valid environment variable name must consist only of printable ASCII characters other than '='"]
    return []


def invalid(field: str, value: object, errors: list[str]) -> str | None:
    """``field.Invalid`` for the first message, as ``field: Invalid value: "x": why`` (the value cut)."""
    if not errors:
        return None
    return f"{field}: Invalid value: {shown(value)}: {'; '.join(errors)}"


def labels(values: Mapping[str, str], field: str) -> str | None:
    """``ValidateLabels``: the first bad key or value."""
    for key, value in values.items():
        problem = invalid(field, key, qualified_name(key)) or invalid(field, value, label_value(value))
        if problem:
            return problem
    return None


def annotations(values: Mapping[str, str], field: str) -> str | None:
    """``ValidateAnnotations``: keys are qualified names (case aside); keys and values together at most
    256 KiB (``field.TooLong`` omits the value)."""
    for key in values:
        problem = invalid(field, key, qualified_name(key.lower()))
        if problem:
            return problem
    total = sum(len(k.encode()) + len(v.encode()) for k, v in values.items())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        return (f"{field}: Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_B} bytes "
                f"(they have {total:,})")
    return None


def path_component(value: str, field: str) -> str | None:
    """Ours, not the API's: a uid names directories (the pod's log directory, ``NS_NAME_UID``), so it must be
    one path component; the API server never sees a static pod's own uid to check it."""
    if value in (".", "..") or "/" in value or "\x00" in value or len(value.encode()) > 128:
        return f"{field}: Invalid value: {shown(value)}: must be one path component of at most 128 bytes " \
               "without '/'"
    return None
