//! Reads a plugin's manifest from its ELF file without loading it: no plugin code runs, so a
//! foreign, corrupt or hostile file can be described safely.
//!
//! Only what the checks need is read, range by range: the ELF header, then the section
//! headers and their names, then the manifest section (or, for the reason of a refusal, the
//! dynamic symbols). A file that is not ELF costs a few bytes, however large or sparse it is.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use object::elf::{FileHeader32, FileHeader64, ELFCLASS32, ELFCLASS64, ET_DYN, SHT_DYNSYM};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{Endianness, ReadCache, ReadRef};
use waldur_plugin_abi::ffi::{MANIFEST_SECTION, ROOT_MODULE_SYMBOL};
use waldur_plugin_abi::manifest::Manifest;

/// A manifest is a few KiB of JSON; a section claiming more is not one we will read.
const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The ELF identification bytes: the magic number, then the class (32 or 64 bits).
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Reads and parses the manifest. `Err` is a one-line reason the file is not a usable plugin.
pub fn read_manifest(path: &Path) -> Result<Manifest, String> {
    read_manifest_from(open_regular(path)?)
}

/// Opens `path` for reading only if it is a regular file. `O_NONBLOCK` keeps the open itself
/// from blocking should the file have been replaced by a FIFO since it was checked; the type
/// is then checked on the open descriptor, which cannot change any more.
fn open_regular(path: &Path) -> Result<File, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let file_type = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .file_type();
    if file_type.is_file() {
        Ok(file)
    } else if file_type.is_fifo() {
        Err("not a regular file (a FIFO)".to_string())
    } else {
        Err("not a regular file".to_string())
    }
}

/// The manifest from any seekable reader (a file, or a counting reader in tests).
pub fn read_manifest_from<R: Read + Seek>(reader: R) -> Result<Manifest, String> {
    let cache = ReadCache::new(reader);
    let data = &cache;
    let not_elf = || "not a shared library (no ELF header)".to_string();
    let len = data
        .len()
        .map_err(|()| "cannot read: cannot seek".to_string())?;
    let ident = data
        .read_bytes_at(0, len.min(5))
        .map_err(|()| "cannot read the ELF header".to_string())?;
    if !ident.starts_with(ELF_MAGIC) {
        return Err(not_elf());
    }
    match ident.get(4) {
        Some(&ELFCLASS64) => manifest_of::<FileHeader64<Endianness>, _>(data),
        Some(&ELFCLASS32) => manifest_of::<FileHeader32<Endianness>, _>(data),
        _ => Err("corrupt or truncated ELF file (unknown ELF class)".to_string()),
    }
}

fn manifest_of<'data, Elf, R>(data: R) -> Result<Manifest, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let corrupt = |e: object::Error| format!("corrupt or truncated ELF file ({e})");
    let header = Elf::parse(data).map_err(corrupt)?;
    let endian = header.endian().map_err(corrupt)?;
    if header.e_type(endian) != ET_DYN {
        return Err("an ELF file but not a shared library".to_string());
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
            "an abi_stable library but not a waldur-agent plugin (no plugin manifest)".to_string()
        } else {
            "not a waldur-agent plugin (no plugin manifest; a foreign shared library?)".to_string()
        });
    };
    let size: u64 = section.sh_size(endian).into();
    if size > MAX_MANIFEST_BYTES {
        return Err(format!(
            "invalid plugin manifest: its section claims {size} bytes (at most {MAX_MANIFEST_BYTES})"
        ));
    }
    let bytes = section
        .data(endian, data)
        .map_err(|e| format!("corrupt or truncated ELF file: manifest unreadable ({e})"))?;
    Manifest::parse(bytes).map_err(|e| format!("invalid plugin manifest: {e}"))
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

    fn bytes_read_for(path: &Path) -> (Result<Manifest, String>, u64) {
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
        assert_eq!(result.unwrap_err(), "not a shared library (no ELF header)");
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
                "not a shared library (no ELF header)",
                "{bytes:?}"
            );
        }
        let path = dir.path().join("header-only.so");
        std::fs::write(&path, b"\x7fELF\x02\x01\x01").unwrap();
        let reason = read_manifest(&path).unwrap_err();
        assert!(
            reason.starts_with("corrupt or truncated ELF file"),
            "{reason}"
        );
    }

    #[test]
    fn a_foreign_library_is_told_apart_reading_a_part_of_it() {
        let library = waldur_test_support::system_library();
        let (result, read) = bytes_read_for(&library);
        assert_eq!(
            result.unwrap_err(),
            "not a waldur-agent plugin (no plugin manifest; a foreign shared library?)"
        );
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
            "not a regular file (a FIFO)"
        );
    }
}
