//! Reads a plugin's manifest from its ELF file without loading it: no plugin code runs, so a
//! foreign, corrupt or hostile file can be described safely.
//!
//! Only what the checks need is read, range by range: the ELF header, then the section
//! headers and their names, then the manifest section (or, for the reason of a refusal, the
//! dynamic symbols). A file that is not ELF costs a few bytes, however large or sparse it is.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use object::elf::{
    FileHeader32, FileHeader64, ELFCLASS32, ELFCLASS64, EM_386, EM_AARCH64, EM_ARM, EM_PPC64,
    EM_RISCV, EM_S390, EM_X86_64, ET_DYN, SHT_DYNSYM,
};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{Endianness, ReadCache, ReadRef};
use waldur_plugin_abi::ffi::{MANIFEST_SECTION, ROOT_MODULE_SYMBOL};
use waldur_plugin_abi::manifest::Manifest;

use super::discover::describe_type;
use super::Refusal;

/// A manifest is a few KiB of JSON; a section claiming more is not one we will read.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The ELF identification bytes: the magic number, then the class (32 or 64 bits).
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// The ELF machine and class (64-bit or not) this agent's own code has: a plugin built for
/// another is refused before the dynamic loader sees it. `None` on an architecture not named
/// here: the dynamic loader then refuses such a plugin itself.
const HOST_MACHINE: Option<(u16, bool)> = if cfg!(target_arch = "x86_64") {
    Some((EM_X86_64, true))
} else if cfg!(target_arch = "aarch64") {
    Some((EM_AARCH64, true))
} else if cfg!(target_arch = "riscv64") {
    Some((EM_RISCV, true))
} else if cfg!(target_arch = "powerpc64") {
    Some((EM_PPC64, true))
} else if cfg!(target_arch = "s390x") {
    Some((EM_S390, true))
} else {
    None
};

/// An ELF machine as operators name it.
fn machine_name(machine: u16, is_64: bool) -> String {
    let name = match (machine, is_64) {
        (EM_X86_64, true) => "x86_64",
        (EM_X86_64, false) => "x32",
        (EM_386, _) => "i386",
        (EM_AARCH64, true) => "aarch64",
        (EM_ARM, _) => "32-bit arm",
        (EM_RISCV, true) => "riscv64",
        (EM_RISCV, false) => "riscv32",
        (EM_PPC64, _) => "ppc64",
        (EM_S390, true) => "s390x",
        _ => {
            let bits = if is_64 { 64 } else { 32 };
            return format!("ELF machine {machine} ({bits}-bit)");
        }
    };
    name.to_string()
}

/// Reads and parses the manifest; `Err` is why the file is not a usable plugin.
pub fn read_manifest(path: &Path) -> Result<Manifest, Refusal> {
    read_manifest_from(open_regular(path)?)
}

/// Opens `path` for reading only if it is a regular file. `O_NONBLOCK` keeps the open itself
/// from blocking should the file have been replaced by a FIFO since it was checked; the type
/// is then checked on the open descriptor, which cannot change any more.
fn open_regular(path: &Path) -> Result<File, Refusal> {
    let unreadable = |e: std::io::Error| Refusal::Unreadable {
        error: e.to_string(),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(unreadable)?;
    let file_type = file.metadata().map_err(unreadable)?.file_type();
    match describe_type(file_type) {
        None => Ok(file),
        Some(what) => Err(Refusal::NotRegularFile {
            what: what.to_string(),
            link_target: None,
        }),
    }
}

/// The manifest from any seekable reader (a file, or a counting reader in tests).
pub fn read_manifest_from<R: Read + Seek>(reader: R) -> Result<Manifest, Refusal> {
    let cache = ReadCache::new(reader);
    let data = &cache;
    let unreadable = |error: &str| Refusal::Unreadable {
        error: error.to_string(),
    };
    let len = data.len().map_err(|()| unreadable("cannot seek"))?;
    let ident = data
        .read_bytes_at(0, len.min(5))
        .map_err(|()| unreadable("the ELF header"))?;
    if !ident.starts_with(ELF_MAGIC) {
        return Err(Refusal::NotElf);
    }
    match ident.get(4) {
        Some(&ELFCLASS64) => manifest_of::<FileHeader64<Endianness>, _>(data, true),
        Some(&ELFCLASS32) => manifest_of::<FileHeader32<Endianness>, _>(data, false),
        _ => Err(Refusal::CorruptElf {
            detail: "unknown ELF class".to_string(),
        }),
    }
}

fn manifest_of<'data, Elf, R>(data: R, is_64: bool) -> Result<Manifest, Refusal>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let corrupt = |e: object::Error| Refusal::CorruptElf {
        detail: e.to_string(),
    };
    let header = Elf::parse(data).map_err(corrupt)?;
    let endian = header.endian().map_err(corrupt)?;
    if header.e_type(endian) != ET_DYN {
        return Err(Refusal::NotSharedLibrary);
    }
    let machine = header.e_machine(endian);
    if let Some((host, host_64)) = HOST_MACHINE {
        if (machine, is_64) != (host, host_64) {
            return Err(Refusal::ForeignArchitecture {
                found: machine_name(machine, is_64),
                expected: machine_name(host, host_64),
            });
        }
    }
    let sections = header.sections(endian, data).map_err(corrupt)?;
    let Some((_, section)) = sections.section_by_name(endian, MANIFEST_SECTION.as_bytes()) else {
        // Only to word the refusal: the dynamic symbols tell an abi_stable library apart.
        let is_abi_stable = sections
            .symbols(endian, data, SHT_DYNSYM)
            .map(|symbols| {
                symbols.iter().any(|symbol| {
                    symbol.name(endian, symbols.strings()) == Ok(ROOT_MODULE_SYMBOL.as_bytes())
                })
            })
            .unwrap_or(false);
        return Err(if is_abi_stable {
            Refusal::NoManifest
        } else {
            Refusal::ForeignLibrary
        });
    };
    let size: u64 = section.sh_size(endian).into();
    if size > MAX_MANIFEST_BYTES {
        return Err(Refusal::ManifestInvalid {
            detail: format!("its section claims {size} bytes (at most {MAX_MANIFEST_BYTES})"),
        });
    }
    let bytes = section
        .data(endian, data)
        .map_err(|e| Refusal::CorruptElf {
            detail: format!("manifest unreadable: {e}"),
        })?;
    Manifest::parse(bytes).map_err(|detail| Refusal::ManifestInvalid { detail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::SeekFrom;

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    fn bytes_read_for(path: &Path) -> (Result<Manifest, Refusal>, u64) {
        let mut counting = Counting {
            inner: File::open(path).unwrap(),
            read: 0,
        };
        let result = read_manifest_from(&mut counting);
        (result, counting.read)
    }

    #[test]
    fn a_sparse_file_without_an_elf_header_costs_a_few_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.so");
        File::create(&path).unwrap().set_len(2 << 30).unwrap();
        let (result, read) = bytes_read_for(&path);
        assert_eq!(result.unwrap_err(), Refusal::NotElf);
        assert!(read <= 64, "{read} bytes read");
    }

    #[test]
    fn short_and_empty_files_are_not_elf() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [&b""[..], b"\x7fE", b"#!/bin/sh\n"] {
            let path = dir.path().join("short.so");
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(
                read_manifest(&path).unwrap_err(),
                Refusal::NotElf,
                "{bytes:?}"
            );
        }
        let path = dir.path().join("header-only.so");
        std::fs::write(&path, b"\x7fELF\x02\x01\x01").unwrap();
        let refusal = read_manifest(&path).unwrap_err();
        assert!(matches!(refusal, Refusal::CorruptElf { .. }), "{refusal:?}");
    }

    #[test]
    fn a_foreign_library_is_told_apart_reading_a_part_of_it() {
        let library = waldur_test_support::system_library();
        let (result, read) = bytes_read_for(&library);
        assert_eq!(result.unwrap_err(), Refusal::ForeignLibrary);
        let len = std::fs::metadata(&library).unwrap().len();
        assert!(read < len / 2, "{read} of {len} bytes read");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo.so");
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert_eq!(
            read_manifest(&path).unwrap_err(),
            Refusal::NotRegularFile {
                what: "a FIFO".to_string(),
                link_target: None
            }
        );
    }
}
