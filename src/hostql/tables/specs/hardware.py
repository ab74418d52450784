"""Table specs: hardware (disks, PCI, USB) and platform security modules."""

from __future__ import annotations

from hostql.tables.spec import (
    BIGINT,
    DARWIN,
    INTEGER,
    LINUX,
    LINUX_ONLY,
    POSIX_PLATFORMS,
    TEXT,
    WINDOWS,
    Column,
    table,
)

_MOD = "hostql.tables.linux.hardware"
_DARWIN = frozenset({DARWIN})
_LINUX_WINDOWS = frozenset({LINUX, WINDOWS})

TABLES = [
    table(
        "block_devices",
        "Every block device the kernel knows (whole disks, partitions, loop, device-mapper, zram), with size,"
        " hardware identity and the filesystem signature found on it.",
        [
            Column("name", TEXT, "Device node path, e.g. /dev/sda1", index=True),
            Column("parent", TEXT, "Device node of the disk a partition belongs to, or of the device a mapper"
                   " device sits on; empty for top-level devices"),
            Column("vendor", TEXT, "Vendor reported by the disk (inherited by its partitions)"),
            Column("model", TEXT, "Model reported by the disk (inherited by its partitions)"),
            Column("serial", TEXT, "World-wide identifier of the disk when the kernel exposes one"),
            Column("size", BIGINT, "Size in 512-byte sectors, as the kernel counts it"),
            Column("block_size", INTEGER, "Logical block size in bytes"),
            Column("uuid", TEXT, "UUID of the filesystem or container found on the device", collate="NOCASE"),
            Column("type", TEXT, "Kind of filesystem or container found on the device (ext4, swap, crypto_LUKS...)"),
            Column("label", TEXT, "Label of the filesystem found on the device"),
        ],
        linux=f"{_MOD}:gen_block_devices",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "disk_encryption",
        "Whether each block device is encrypted (dm-crypt/LUKS on Linux), and with which scheme and cipher.",
        [
            Column("name", TEXT, "Device node path, as in block_devices", index=True),
            Column("uuid", TEXT, "UUID of the filesystem or container on the device", collate="NOCASE"),
            Column("encrypted", INTEGER, "1 when the device is an encrypted mapping or sits on one, otherwise 0"),
            Column("type", TEXT, "Encryption scheme, cipher and mode joined by dashes (e.g. LUKS2-aes-xts-plain64)"),
            Column("encryption_status", TEXT, "One of: encrypted, not encrypted, undefined"),
            Column("uid", TEXT, "macOS only: user currently unlocking the volume", platforms=_DARWIN),
            Column("user_uuid", TEXT, "macOS only: UUID of that user", collate="NOCASE", platforms=_DARWIN),
            Column("filevault_status", TEXT, "macOS only: FileVault state (on, off, unknown)", platforms=_DARWIN),
        ],
        linux=f"{_MOD}:gen_disk_encryption",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "pci_devices",
        "Devices on the PCI bus, with their numeric identifiers, bound driver and names looked up in pci.ids.",
        [
            Column("pci_slot", TEXT, "Bus address of the device (domain:bus:slot.function)"),
            Column("pci_class", TEXT, "Name of the device class from pci.ids"),
            Column("driver", TEXT, "Kernel driver bound to the device, empty when none"),
            Column("vendor", TEXT, "Vendor name from pci.ids"),
            Column("vendor_id", TEXT, "Vendor identifier as 0x-prefixed hex", collate="NOCASE"),
            Column("model", TEXT, "Device name from pci.ids"),
            Column("model_id", TEXT, "Device identifier as 0x-prefixed hex", collate="NOCASE"),
            Column("pci_class_id", TEXT, "Class code as 0x-prefixed hex", collate="NOCASE", platforms=LINUX_ONLY),
            Column("pci_subclass_id", TEXT, "Subclass code as 0x-prefixed hex", collate="NOCASE",
                   platforms=LINUX_ONLY),
            Column("pci_subclass", TEXT, "Name of the subclass from pci.ids", platforms=LINUX_ONLY),
            Column("subsystem_vendor_id", TEXT, "Subsystem (board maker) vendor identifier as 0x-prefixed hex",
                   collate="NOCASE", platforms=LINUX_ONLY),
            Column("subsystem_vendor", TEXT, "Subsystem vendor name from pci.ids", platforms=LINUX_ONLY),
            Column("subsystem_model_id", TEXT, "Subsystem device identifier as 0x-prefixed hex", collate="NOCASE",
                   platforms=LINUX_ONLY),
            Column("subsystem_model", TEXT, "Subsystem device name from pci.ids", platforms=LINUX_ONLY),
        ],
        linux=f"{_MOD}:gen_pci_devices",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "usb_devices",
        "USB devices currently attached, root hubs included, with identifiers and names from usb.ids.",
        [
            Column("usb_address", INTEGER, "Number of the USB bus the device is on"),
            Column("usb_port", INTEGER, "Device number on that bus"),
            Column("vendor", TEXT, "Vendor name from usb.ids, else the device's manufacturer string"),
            Column("vendor_id", TEXT, "Vendor identifier as 4 hex digits", collate="NOCASE"),
            Column("version", TEXT, "Device release number (bcdDevice) as 4 hex digits", collate="VERSION"),
            Column("model", TEXT, "Product name from usb.ids, else the device's product string"),
            Column("model_id", TEXT, "Product identifier as 4 hex digits", collate="NOCASE"),
            Column("serial", TEXT, "Serial number string of the device, when it has one"),
            Column("class", TEXT, "Device class code (decimal)"),
            Column("subclass", TEXT, "Device subclass code (decimal)"),
            Column("protocol", TEXT, "Device protocol code (decimal)"),
            Column("removable", INTEGER, "1 removable, 0 fixed, -1 when the hub cannot tell"),
        ],
        linux=f"{_MOD}:gen_usb_devices",
        platforms=POSIX_PLATFORMS,
    ),
    table(
        "secureboot",
        "UEFI Secure Boot state of the firmware; no row on machines that did not boot through UEFI.",
        [
            Column("secure_boot", INTEGER, "1 when Secure Boot is enforcing, 0 when off, -1 for an unexpected value"),
            Column("secure_mode", INTEGER, "Intel Macs only: 0 off, 1 full, 2 medium security", platforms=_DARWIN),
            Column("description", TEXT, "Apple silicon only: security policy in words", platforms=_DARWIN),
            Column("kernel_extensions", INTEGER, "Apple silicon only: 1 when user-approved kernel extensions may"
                   " load", platforms=_DARWIN),
            Column("mdm_operations", INTEGER, "Apple silicon only: 1 when MDM may manage kernel extensions and"
                   " updates", platforms=_DARWIN),
            Column("setup_mode", INTEGER, "1 when the firmware is in Setup Mode (no platform key enrolled), 0 when"
                   " not, -1 for an unexpected value", platforms=_LINUX_WINDOWS),
        ],
        linux=f"{_MOD}:gen_secureboot",
    ),
    table(
        "selinux_settings",
        "Current SELinux state as exposed by selinuxfs: global switches, booleans, policy capabilities,"
        " initial contexts and class permissions.",
        [
            Column("scope", TEXT, "Part of selinuxfs the setting comes from (empty for top-level switches,"
                   " booleans, policy_capabilities, initial_contexts, class)"),
            Column("key", TEXT, "Setting name, or class path for class permissions"),
            Column("value", TEXT, "Value in effect (on/off for booleans, permission name for classes)"),
        ],
        linux=f"{_MOD}:gen_selinux_settings",
        platforms=LINUX_ONLY,
        examples=("SELECT * FROM selinux_settings WHERE key = 'enforce'",),
    ),
    table(
        "apparmor_profiles",
        "AppArmor profiles loaded in the kernel, with their enforcement mode and attachment.",
        [
            Column("path", TEXT, "Full hierarchical profile name as aa-status prints it (parent//child)",
                   index=True),
            Column("name", TEXT, "Profile name (last component of the path)"),
            Column("attach", TEXT, "Executables the profile confines"),
            Column("mode", TEXT, "Enforcement mode: enforce, complain, kill, unconfined..."),
            Column("sha1", TEXT, "SHA-1 of the loaded policy, when the kernel computes it", collate="NOCASE"),
            Column("sha256", TEXT, "SHA-256 of the loaded policy, when the kernel computes it", collate="NOCASE"),
        ],
        linux=f"{_MOD}:gen_apparmor_profiles",
        platforms=LINUX_ONLY,
        examples=("SELECT * FROM apparmor_profiles WHERE mode = 'complain'",),
    ),
]
