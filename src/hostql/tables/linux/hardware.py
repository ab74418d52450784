"""Linux hardware and security-module tables, read from sysfs and securityfs.

block_devices, disk_encryption, pci_devices, usb_devices, secureboot,
selinux_settings and apparmor_profiles.  osquery asks udev and libblkid; we read
the same facts from /sys directly (udev's database only for filesystem
signatures when present), so nothing here needs a daemon or a C library.  Every
reader takes ``root`` so tests can build a fake /sys under a temporary directory.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from hostql.sql.context import QueryContext
from hostql.tables.common.rootfs import under_root

log = logging.getLogger(__name__)


# --- small sysfs helpers --------------------------------------------------------


def _read(path: str) -> str | None:
    """A sysfs attribute with surrounding whitespace removed; None if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _uevent(path: str) -> dict[str, str]:
    """KEY=value pairs of a sysfs ``uevent`` file."""
    text = _read(os.path.join(path, "uevent")) or ""
    pairs = (line.partition("=") for line in text.splitlines())
    return {key: value for key, sep, value in pairs if sep}


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _mount_point(fs_type: str, root: str) -> str | None:
    """Where a filesystem type is mounted, per ``root``/proc/mounts."""
    text = _read(os.path.join(root, "proc", "mounts")) or ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == fs_type:
            return fields[1]
    return None


# --- filesystem signatures (what libblkid reports as UUID/TYPE/LABEL) ------------

# Enough of the device start to see every signature probed below (btrfs sits at 64 KiB).
_PROBE_BYTES = 0x10000 + 0x1000


def _cstr(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _uuid16(data: bytes) -> str | None:
    return None if not any(data) else str(uuidlib.UUID(bytes=data))


def _probe_ext(data: bytes) -> tuple[str | None, str, str | None] | None:
    sb = data[1024:2048]
    if len(sb) < 136 or sb[56:58] != b"\x53\xef":
        return None
    compat = int.from_bytes(sb[92:96], "little")
    incompat = int.from_bytes(sb[96:100], "little")
    ro_compat = int.from_bytes(sb[100:104], "little")
    if incompat & 0x8:  # an external journal device, not a filesystem
        kind = "jbd"
    # Features ext3 did not know mean the filesystem needs ext4.
    elif incompat & ~0x16 or ro_compat & ~0x7:
        kind = "ext4"
    elif compat & 0x4:
        kind = "ext3"
    else:
        kind = "ext2"
    return _uuid16(sb[104:120]), kind, _cstr(sb[120:136]) or None


def _probe_fat(data: bytes) -> tuple[str | None, str, str | None] | None:
    if data[510:512] != b"\x55\xaa":
        return None
    if data[82:87] == b"FAT32":
        serial, label = data[67:71], data[71:82]
    elif data[54:59] in (b"FAT12", b"FAT16"):
        serial, label = data[39:43], data[43:54]
    else:
        return None
    number = int.from_bytes(serial, "little")
    text = _cstr(label)
    return f"{number >> 16:04X}-{number & 0xFFFF:04X}", "vfat", None if text in ("", "NO NAME") else text


def _probe_swap(data: bytes) -> tuple[str | None, str, str | None] | None:
    for page in (4096, 8192, 16384, 65536):
        if data[page - 10 : page] in (b"SWAPSPACE2", b"SWAP-SPACE"):
            return _uuid16(data[1036:1052]), "swap", _cstr(data[1052:1068]) or None
    return None


def probe_signature(data: bytes) -> tuple[str | None, str, str | None] | None:
    """(uuid, type, label) of the filesystem or container whose start is ``data``."""
    if data[:6] == b"LUKS\xba\xbe":
        return _cstr(data[168:208]) or None, "crypto_LUKS", _cstr(data[24:72]) or None
    if data[:4] == b"XFSB":
        return _uuid16(data[32:48]), "xfs", _cstr(data[108:120]) or None
    if data[:4] == b"hsqs":
        return None, "squashfs", None
    if data[0x10040:0x10048] == b"_BHRfS_M":
        return _uuid16(data[0x10020:0x10030]), "btrfs", _cstr(data[0x1012B:0x1022B]) or None
    for probe in (_probe_ext, _probe_fat, _probe_swap):
        found = probe(data)
        if found:
            return found
    return None


def _read_device_start(path: str, size: int = _PROBE_BYTES) -> bytes | None:
    try:
        # O_NONBLOCK: an empty removable drive must not stall the query.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        log.debug("cannot open %s to read its signature: %s", path, exc)
        return None
    try:
        return os.read(fd, size)
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None
    finally:
        os.close(fd)


def _udev_signature(root: str, dev: str | None) -> tuple[str | None, str, str | None] | None:
    """The signature udev recorded (from its own blkid run) for major:minor ``dev``."""
    if not dev or dev == ":":
        return None
    text = _read(os.path.join(root, "run", "udev", "data", f"b{dev}"))
    if not text:
        return None
    props = dict(line[2:].partition("=")[::2] for line in text.splitlines() if line.startswith("E:"))
    kind = props.get("ID_FS_TYPE")
    if not kind:
        return None
    return props.get("ID_FS_UUID") or None, kind, props.get("ID_FS_LABEL") or None


# --- block devices ------------------------------------------------------------------


@dataclass(slots=True)
class BlockDevice:
    name: str
    sys_path: str
    parent: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    size: int | None = None
    block_size: int | None = None
    uuid: str | None = None
    type: str | None = None
    label: str | None = None
    resolved: bool = False
    probed: bool = False

    def row(self) -> tuple[str, str, str | None, str | None, str | None, int | None, int | None,
                           str | None, str | None, str | None]:
        return (self.name, self.parent or "", self.vendor, self.model, self.serial, self.size, self.block_size,
                self.uuid, self.type, self.label)


def _parent_of(sys_path: str) -> str | None:
    """A partition's disk is its parent directory; a mapper device's is its single slave."""
    above = os.path.basename(os.path.dirname(sys_path))
    if above != "block":
        return "/dev/" + above
    slaves = _listdir(os.path.join(sys_path, "slaves"))
    if len(slaves) > 1:
        log.debug("%s sits on several devices; reporting the first as parent", sys_path)
    return "/dev/" + slaves[0] if slaves else None


def enumerate_block_devices(root: str = "/") -> dict[str, BlockDevice]:
    """Every device in /sys/class/block by /dev name, with its parent; metadata not read yet."""
    class_dir = os.path.join(root, "sys", "class", "block")
    devices: dict[str, BlockDevice] = {}
    for entry in _listdir(class_dir):
        link = os.path.join(class_dir, entry)
        real = os.path.realpath(link)
        if not os.path.isfile(os.path.join(real, "uevent")):
            log.debug("block device %s has no uevent file; skipped", entry)
            continue
        name = "/dev/" + os.path.basename(real)
        devices[name] = BlockDevice(name=name, sys_path=real, parent=_parent_of(real))
    return devices


def _resolve(device: BlockDevice, devices: dict[str, BlockDevice], root: str, probe: bool) -> None:
    """Fill ``device`` from sysfs after its parent, whose disk identity it inherits."""
    if not device.resolved:
        device.resolved = True
        parent = devices.get(device.parent or "")
        if parent is not None:
            _resolve(parent, devices, root, probe=False)
        _read_metadata(device, parent)
    if probe and not device.probed:
        device.probed = True
        _probe_device(device, root)


def _read_metadata(device: BlockDevice, parent: BlockDevice | None) -> None:
    path = device.sys_path
    device.size = _read_int(os.path.join(path, "size"))
    device.block_size = _read_int(os.path.join(path, "queue", "logical_block_size"))
    if parent is not None:
        # Partitions have no device/ link of their own: the disk's identity is theirs.
        device.vendor, device.model, device.serial = parent.vendor, parent.model, parent.serial
        if device.block_size is None:
            device.block_size = parent.block_size
    else:
        device.vendor = _read(os.path.join(path, "device", "vendor")) or None
        device.model = _read(os.path.join(path, "device", "model")) or None
        device.serial = _read(os.path.join(path, "device", "wwid")) or None


def _probe_device(device: BlockDevice, root: str) -> None:
    props = _uevent(device.sys_path)
    found = _udev_signature(root, f"{props.get('MAJOR', '')}:{props.get('MINOR', '')}")
    if found is None and device.size:
        data = _read_device_start(under_root(root, device.name))
        found = probe_signature(data) if data else None
    if found is not None:
        device.uuid, device.type, device.label = found


def list_block_devices(
    root: str = "/", names: Iterable[str] | None = None, probe: bool = True
) -> list[BlockDevice]:
    """Block devices (all, or those named), parents before children, metadata filled."""
    devices = enumerate_block_devices(root)
    wanted = set(names) if names else None
    result = []
    for name, device in devices.items():
        if wanted is None or name in wanted:
            _resolve(device, devices, root, probe)
            result.append(device)
    return result


def _probe_wanted(ctx: QueryContext) -> bool:
    # Reading device contents is the expensive part; skip it when no column needs it.
    return ctx.any_used(("uuid", "type", "label"))


def gen_block_devices(ctx: QueryContext) -> Iterator[tuple[object, ...]]:
    for device in list_block_devices("/", ctx.equals("name") or None, _probe_wanted(ctx)):
        yield device.row()


# --- disk encryption -------------------------------------------------------------------


def _luks_cipher(data: bytes) -> str | None:
    """cipher-mode text from a LUKS1 or LUKS2 header."""
    if data[:6] != b"LUKS\xba\xbe":
        return None
    version = int.from_bytes(data[6:8], "big")
    if version == 1:
        name, mode = _cstr(data[8:40]), _cstr(data[40:72])
        return f"{name}-{mode}" if name else None
    if version == 2:
        header_size = int.from_bytes(data[8:16], "big")
        try:
            meta = json.loads(data[4096:header_size].split(b"\0", 1)[0])
            segments = meta.get("segments", {})
            first = segments[min(segments, key=int)]
            return str(first["encryption"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def crypt_scheme(sys_path: str) -> str | None:
    """dm-crypt scheme (LUKS1, LUKS2, PLAIN...) from the mapper UUID, None if not dm-crypt."""
    dm_uuid = _read(os.path.join(sys_path, "dm", "uuid")) or ""
    if not dm_uuid.startswith("CRYPT-"):
        return None
    return dm_uuid.split("-")[1] or "CRYPT"


def encryption_rows(root: str = "/", names: Iterable[str] | None = None, probe: bool = True) -> list[
        tuple[str, str | None, int, str | None, str]]:
    """(name, uuid, encrypted, type, encryption_status) per block device."""
    devices = enumerate_block_devices(root)
    types: dict[str, str | None] = {}

    def encryption(device: BlockDevice) -> tuple[bool, str | None]:
        if device.name in types:
            return True, types[device.name]
        scheme = crypt_scheme(device.sys_path)
        if scheme is not None:
            cipher = None
            backing = devices.get(device.parent or "")
            if backing is not None and scheme.startswith("LUKS"):
                header = _read_device_start(under_root(root, backing.name), 0x8000)
                cipher = _luks_cipher(header) if header else None
            types[device.name] = f"{scheme}-{cipher}" if cipher else scheme
            return True, types[device.name]
        parent = devices.get(device.parent or "")
        # Whatever sits on an encrypted mapping (LVM on LUKS) is encrypted too.
        if parent is not None and encryption(parent)[0]:
            types[device.name] = types[parent.name]
            return True, types[device.name]
        return False, None

    wanted = set(names) if names else None
    rows = []
    for name, device in devices.items():
        if wanted is not None and name not in wanted:
            continue
        if probe:
            _resolve(device, devices, root, probe=True)
        encrypted, kind = encryption(device)
        rows.append((name, device.uuid, int(encrypted), kind, "encrypted" if encrypted else "not encrypted"))
    return rows


def gen_disk_encryption(ctx: QueryContext) -> Iterator[dict[str, object]]:
    probe = ctx.is_used("uuid")
    for name, dev_uuid, encrypted, kind, status in encryption_rows("/", ctx.equals("name") or None, probe):
        yield {"name": name, "uuid": dev_uuid, "encrypted": encrypted, "type": kind, "encryption_status": status}


# --- hardware id databases (pci.ids, usb.ids) -----------------------------------------

PCI_IDS_PATHS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids")
USB_IDS_PATHS = ("usr/share/misc/usb.ids", "usr/share/hwdata/usb.ids", "var/lib/usbutils/usb.ids",
                 "usr/share/usb.ids")

_VENDOR_LINE = re.compile(r"([0-9a-fA-F]{4})\s+(.*)")
_DEVICE_LINE = re.compile(r"\t([0-9a-fA-F]{4})\s+(.*)")
_SUBSYSTEM_LINE = re.compile(r"\t\t([0-9a-fA-F]{4}) ([0-9a-fA-F]{4})\s+(.*)")
_CLASS_LINE = re.compile(r"C ([0-9a-fA-F]{2})\s+(.*)")
_SUBCLASS_LINE = re.compile(r"\t([0-9a-fA-F]{2})\s+(.*)")


@dataclass(slots=True)
class IdsDatabase:
    """Names from a pci.ids/usb.ids file; all ids are lower-case hex without 0x."""

    vendors: dict[str, str] = field(default_factory=dict)
    devices: dict[tuple[str, str], str] = field(default_factory=dict)
    subsystems: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    subclasses: dict[tuple[str, str], str] = field(default_factory=dict)


def parse_ids(text: str) -> IdsDatabase:
    """Parse the pci.ids/usb.ids layout: vendors, indented devices and subsystems, C classes."""
    db = IdsDatabase()
    vendor: str | None = None
    device: str | None = None
    klass: str | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            vendor = device = klass = None
            if match := _VENDOR_LINE.fullmatch(line):
                vendor = match[1].lower()
                db.vendors[vendor] = match[2].strip()
            elif match := _CLASS_LINE.fullmatch(line):
                klass = match[1].lower()
                db.classes[klass] = match[2].strip()
            # Any other top-level line opens a section we do not use.
            continue
        if vendor is not None:
            if match := _DEVICE_LINE.fullmatch(line):
                device = match[1].lower()
                db.devices[(vendor, device)] = match[2].strip()
            elif device is not None and (match := _SUBSYSTEM_LINE.fullmatch(line)):
                key = (vendor, device, match[1].lower(), match[2].lower())
                db.subsystems[key] = match[3].strip()
        elif klass is not None and (match := _SUBCLASS_LINE.fullmatch(line)):
            db.subclasses[(klass, match[1].lower())] = match[2].strip()
    return db


@functools.lru_cache(maxsize=4)
def _parse_ids_file(path: str, mtime_ns: int, size: int) -> IdsDatabase:
    # Keyed by mtime and size so an updated database is parsed again.
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_ids(handle.read())


def load_ids(root: str, candidates: Iterable[str]) -> IdsDatabase | None:
    """The first readable ids database under ``root``, parsed once per version."""
    for relative in candidates:
        path = os.path.join(root, relative)
        try:
            info = os.stat(path)
            return _parse_ids_file(path, info.st_mtime_ns, info.st_size)
        except OSError:
            continue
    log.debug("no ids database under %s (tried %s); names stay empty", root, ", ".join(candidates))
    return None


# --- PCI ---------------------------------------------------------------------------------


def _split_id_pair(text: str | None) -> tuple[str, str] | None:
    """'8086:0D57' -> ('8086', '0d57')."""
    if not text:
        return None
    first, sep, second = text.lower().partition(":")
    if not sep or not first or not second or ":" in second:
        return None
    return first, second


def _class_ids(text: str | None) -> tuple[str, str] | None:
    """PCI_CLASS (class, subclass, prog-if as hex, leading zero dropped) -> class and subclass."""
    if not text:
        return None
    code = text.lower().rjust(6, "0")
    if len(code) != 6:
        return None
    return code[0:2], code[2:4]


def pci_rows(root: str = "/") -> list[dict[str, str | None]]:
    base = os.path.join(root, "sys", "bus", "pci", "devices")
    db = load_ids(root, PCI_IDS_PATHS) or IdsDatabase()
    rows = []
    for entry in _listdir(base):
        props = _uevent(os.path.join(base, entry))
        if not props:
            continue
        row: dict[str, str | None] = {"pci_slot": props.get("PCI_SLOT_NAME", entry), "driver": props.get("DRIVER")}
        ids = _split_id_pair(props.get("PCI_ID"))
        if ids:
            vendor, model = ids
            row.update(vendor_id="0x" + vendor, model_id="0x" + model, vendor=db.vendors.get(vendor),
                       model=db.devices.get((vendor, model)))
            sub = _split_id_pair(props.get("PCI_SUBSYS_ID"))
            if sub:
                row.update(subsystem_vendor_id="0x" + sub[0], subsystem_model_id="0x" + sub[1],
                           subsystem_vendor=db.vendors.get(sub[0]),
                           subsystem_model=db.subsystems.get((vendor, model, sub[0], sub[1])))
        classes = _class_ids(props.get("PCI_CLASS"))
        if classes:
            row.update(pci_class_id="0x" + classes[0], pci_subclass_id="0x" + classes[1],
                       pci_class=db.classes.get(classes[0]), pci_subclass=db.subclasses.get(classes))
        rows.append(row)
    return rows


def gen_pci_devices(ctx: QueryContext) -> Iterator[dict[str, str | None]]:
    yield from pci_rows("/")


# --- USB ---------------------------------------------------------------------------------


def _usb_class_triple(path: str, props: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """Class, subclass, protocol in decimal, as the kernel's TYPE=c/s/p uevent key gives them."""
    parts = props.get("TYPE", "").split("/")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    values = []
    for attr in ("bDeviceClass", "bDeviceSubClass", "bDeviceProtocol"):
        text = _read(os.path.join(path, attr))
        try:
            values.append(str(int(text, 16)) if text else None)
        except ValueError:
            values.append(None)
    return values[0], values[1], values[2]


_REMOVABLE = {"removable": 1, "fixed": 0, "unknown": -1}


def usb_rows(root: str = "/") -> list[dict[str, object]]:
    base = os.path.join(root, "sys", "bus", "usb", "devices")
    db = load_ids(root, USB_IDS_PATHS) or IdsDatabase()
    rows: list[dict[str, object]] = []
    for entry in _listdir(base):
        path = os.path.join(base, entry)
        props = _uevent(path)
        # Interfaces share the directory; only whole devices carry a bus and device number.
        bus, devnum = props.get("BUSNUM", ""), props.get("DEVNUM", "")
        if not bus.isdigit() or not devnum.isdigit():
            continue
        vendor_id = (_read(os.path.join(path, "idVendor")) or "").lower() or None
        model_id = (_read(os.path.join(path, "idProduct")) or "").lower() or None
        klass, subclass, protocol = _usb_class_triple(path, props)
        vendor = db.vendors.get(vendor_id or "") or _read(os.path.join(path, "manufacturer")) or None
        model = db.devices.get((vendor_id or "", model_id or "")) or _read(os.path.join(path, "product")) or None
        rows.append({
            "usb_address": int(bus, 10),
            "usb_port": int(devnum, 10),
            "vendor": vendor,
            "vendor_id": vendor_id,
            "version": _read(os.path.join(path, "bcdDevice")) or None,
            "model": model,
            "model_id": model_id,
            "serial": _read(os.path.join(path, "serial")) or None,
            "class": klass,
            "subclass": subclass,
            "protocol": protocol,
            "removable": _REMOVABLE.get(_read(os.path.join(path, "removable")) or ""),
        })
    return rows


def gen_usb_devices(ctx: QueryContext) -> Iterator[dict[str, object]]:
    yield from usb_rows("/")


# --- Secure Boot ---------------------------------------------------------------------------

EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"


def _efi_bool(root: str, name: str) -> int | None:
    """A one-byte boolean EFI global variable: 0, 1, -1 for anything else, None if absent."""
    efi = os.path.join(root, "sys", "firmware", "efi")
    value: int | None = None
    try:
        # efivarfs files start with the 4-byte variable attributes.
        with open(os.path.join(efi, "efivars", f"{name}-{EFI_GLOBAL_GUID}"), "rb") as handle:
            data = handle.read(5)
        value = data[4] if len(data) == 5 else None
    except OSError:
        # The older sysfs interface keeps the bare value in a data file.
        try:
            with open(os.path.join(efi, "vars", f"{name}-{EFI_GLOBAL_GUID}", "data"), "rb") as handle:
                data = handle.read(1)
            value = data[0] if data else None
        except OSError:
            return None
    if value is None:
        return None
    return value if value in (0, 1) else -1


def secureboot_rows(root: str = "/") -> list[dict[str, int | None]]:
    if not os.path.isdir(os.path.join(root, "sys", "firmware", "efi")):
        log.debug("not booted through UEFI: no Secure Boot state")
        return []
    return [{"secure_boot": _efi_bool(root, "SecureBoot"), "setup_mode": _efi_bool(root, "SetupMode")}]


def gen_secureboot(ctx: QueryContext) -> Iterator[dict[str, int | None]]:
    yield from secureboot_rows("/")


# --- SELinux -----------------------------------------------------------------------------

SELINUX_ROOT_KEYS = ("checkreqprot", "deny_unknown", "enforce", "mls", "policyvers", "reject_unknown")
SELINUX_SCOPES = ("booleans", "policy_capabilities", "initial_contexts")


def selinuxfs_path(root: str = "/") -> str | None:
    """The selinuxfs mount under ``root``, None when SELinux is not active."""
    mount = _mount_point("selinuxfs", root)
    if mount is not None:
        return under_root(root, mount)
    fallback = os.path.join(root, "sys", "fs", "selinux")
    return fallback if os.path.isfile(os.path.join(fallback, "enforce")) else None


def _selinux_value(scope: str, raw: str) -> str:
    if scope == "booleans":
        # A boolean file holds "<current> <pending>"; the current value is in effect.
        return "on" if raw.split()[:1] == ["1"] else "off"
    return raw.rstrip("\0").strip()


def selinux_rows(root: str = "/") -> list[tuple[str, str, str]]:
    base = selinuxfs_path(root)
    if base is None:
        log.debug("selinuxfs is not mounted: SELinux is off")
        return []
    rows = []
    for key in SELINUX_ROOT_KEYS:
        value = _read(os.path.join(base, key))
        if value is not None:
            rows.append(("", key, value))
    for scope in SELINUX_SCOPES:
        directory = os.path.join(base, scope)
        for key in _listdir(directory):
            raw = _read(os.path.join(directory, key))
            if raw is not None:
                rows.append((scope, key, _selinux_value(scope, raw)))
    class_root = os.path.join(base, "class")
    for directory, _subdirs, files in sorted(os.walk(class_root)):
        key = os.path.relpath(directory, class_root)
        if key == ".":
            continue
        for name in sorted(files):
            # "index" holds the class number, not a permission.
            if name != "index":
                rows.append(("class", key, name))
    return rows


def gen_selinux_settings(ctx: QueryContext) -> Iterator[tuple[str, str, str]]:
    yield from selinux_rows("/")


# --- AppArmor ------------------------------------------------------------------------------


def _apparmor_dir(root: str) -> str:
    mount = _mount_point("securityfs", root) or "/sys/kernel/security"
    return os.path.join(under_root(root, mount), "apparmor")


def _profile_dirs(directory: str) -> Iterator[str]:
    for entry in _listdir(directory):
        path = os.path.join(directory, entry)
        if os.path.isdir(path):
            yield path
            yield from _profile_dirs(os.path.join(path, "profiles"))


def _base_name(path: str) -> str:
    return path.rsplit("//", 1)[-1]


def parse_apparmor_profiles_file(text: str) -> list[tuple[str, str]]:
    """(hierarchical name, mode) from the flat 'name (mode)' listing."""
    rows = []
    for line in text.splitlines():
        name, sep, mode = line.rstrip().rpartition(" (")
        if sep and mode.endswith(")"):
            rows.append((name, mode[:-1]))
    return rows


def apparmor_rows(root: str = "/") -> list[dict[str, str | None]]:
    base = _apparmor_dir(root)
    policy = os.path.join(base, "policy", "profiles")
    rows: list[dict[str, str | None]] = []
    if os.path.isdir(policy):
        for path in _profile_dirs(policy):
            # The name file holds the full parent//child name aa-status prints.
            full = _read(os.path.join(path, "name"))
            if not full:
                continue
            rows.append({"path": full, "name": _base_name(full), "attach": _read(os.path.join(path, "attach")),
                         "mode": _read(os.path.join(path, "mode")), "sha1": _read(os.path.join(path, "sha1")),
                         "sha256": _read(os.path.join(path, "sha256"))})
        return rows
    listing = _read(os.path.join(base, "profiles"))
    if listing is None:
        log.debug("AppArmor is not active (no %s)", base)
        return []
    for full, mode in parse_apparmor_profiles_file(listing):
        rows.append({"path": full, "name": _base_name(full), "mode": mode})
    return rows


def gen_apparmor_profiles(ctx: QueryContext) -> Iterator[dict[str, str | None]]:
    wanted = ctx.equals("path")
    for row in apparmor_rows("/"):
        if not wanted or row["path"] in wanted:
            yield row
