//! The Lambda builds (`./dev lambdas`): for every function of the template, an x86-64 ELF
//! `bootstrap` that needs no glibc newer than Amazon Linux 2023's, and the zip the template
//! deploys, holding exactly that binary as an executable `bootstrap`.
//!
//! The ELF and zip structures are read here directly (no tools, no crates): the ELF header, the
//! section headers and `.gnu.version_r` (SHT_GNU_verneed); the zip's central directory.

use std::path::PathBuf;

use infra::template::FUNCTIONS;

/// glibc of Amazon Linux 2023 (`provided.al2023`).
const AL2023_GLIBC: (u32, u32) = (2, 34);

fn lambda_dir() -> PathBuf {
    match std::env::var("CONDUIT_LAMBDA_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace")
            .join("target/lambda"),
    }
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): build the Lambdas with `./dev lambdas` (./dev test does it first)",
            path.display()
        )
    })
}

// ---------------------------------------------------------------------------------------------
// ELF
// ---------------------------------------------------------------------------------------------

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

const EM_X86_64: u16 = 62;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;

struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: usize,
    info: usize,
}

/// Checks the ELF header (64-bit, little-endian, x86-64) and returns the section headers.
fn x86_64_sections(elf: &[u8], name: &str) -> Vec<Section> {
    assert!(
        elf.len() > 64 && elf[..4] == *b"\x7fELF",
        "{name} is not an ELF file"
    );
    assert_eq!(elf[4], 2, "{name} is not a 64-bit ELF");
    assert_eq!(elf[5], 1, "{name} is not little-endian");
    let machine = u16_at(elf, 18);
    assert_eq!(
        machine, EM_X86_64,
        "{name} is for machine {machine}, not x86-64 ({EM_X86_64})"
    );
    let shoff = u64_at(elf, 0x28) as usize;
    let shentsize = u16_at(elf, 0x3a) as usize;
    let shnum = u16_at(elf, 0x3c) as usize;
    assert!(shentsize >= 64 && shoff + shnum * shentsize <= elf.len());
    (0..shnum)
        .map(|i| {
            let h = shoff + i * shentsize;
            Section {
                kind: u32_at(elf, h + 4),
                offset: u64_at(elf, h + 24) as usize,
                size: u64_at(elf, h + 32) as usize,
                link: u32_at(elf, h + 40) as usize,
                info: u32_at(elf, h + 44) as usize,
            }
        })
        .collect()
}

fn c_string(bytes: &[u8], at: usize) -> String {
    let end = bytes[at..]
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes.len(), |n| at + n);
    String::from_utf8_lossy(&bytes[at..end]).into_owned()
}

/// Every (library, version) the binary requires, from `.gnu.version_r`: `Elf64_Verneed`
/// entries (version, count, file, aux, next) each followed by `Elf64_Vernaux` entries (hash,
/// flags, other, name, next), names in the string table the section links to.
fn version_needs(elf: &[u8], name: &str) -> Vec<(String, String)> {
    let sections = x86_64_sections(elf, name);
    let mut out = Vec::new();
    for verneed in sections.iter().filter(|s| s.kind == SHT_GNU_VERNEED) {
        let strtab = &sections[verneed.link];
        let strings = &elf[strtab.offset..strtab.offset + strtab.size];
        let data = &elf[verneed.offset..verneed.offset + verneed.size];
        let mut at = 0usize;
        for _ in 0..verneed.info {
            let count = u16_at(data, at + 2);
            let file = c_string(strings, u32_at(data, at + 4) as usize);
            let mut aux = at + u32_at(data, at + 8) as usize;
            for _ in 0..count {
                out.push((
                    file.clone(),
                    c_string(strings, u32_at(data, aux + 8) as usize),
                ));
                let next = u32_at(data, aux + 12) as usize;
                if next == 0 {
                    break;
                }
                aux += next;
            }
            let next = u32_at(data, at + 12) as usize;
            if next == 0 {
                break;
            }
            at += next;
        }
    }
    out
}

/// `GLIBC_2.34` → (2, 34); `GLIBC_PRIVATE` and others → None.
fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

// ---------------------------------------------------------------------------------------------
// Zip
// ---------------------------------------------------------------------------------------------

struct ZipEntry {
    name: String,
    crc32: u32,
    size: u64,
    unix_mode: u32,
}

/// The entries of a zip's central directory (found through the end-of-central-directory
/// record, signature `PK\5\6`; entries `PK\1\2`).
fn zip_entries(zip: &[u8], name: &str) -> Vec<ZipEntry> {
    let eocd = (0..=zip.len().saturating_sub(22))
        .rev()
        .find(|&i| zip[i..i + 4] == *b"PK\x05\x06")
        .unwrap_or_else(|| panic!("{name} is not a zip file"));
    let count = u16_at(zip, eocd + 10) as usize;
    let mut at = u32_at(zip, eocd + 16) as usize;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        assert_eq!(
            zip[at..at + 4],
            *b"PK\x01\x02",
            "{name}: bad central directory"
        );
        let name_len = u16_at(zip, at + 28) as usize;
        let extra_len = u16_at(zip, at + 30) as usize;
        let comment_len = u16_at(zip, at + 32) as usize;
        out.push(ZipEntry {
            name: String::from_utf8_lossy(&zip[at + 46..at + 46 + name_len]).into_owned(),
            crc32: u32_at(zip, at + 16),
            size: u64::from(u32_at(zip, at + 24)),
            unix_mode: u32_at(zip, at + 38) >> 16,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    out
}

/// CRC-32 (IEEE, reflected, polynomial 0xEDB88320), as zip stores it.
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn crc32_is_the_zip_checksum() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn every_lambda_binary_fits_al2023_and_is_zipped_as_bootstrap() {
    let dir = lambda_dir();
    assert!(
        dir.is_dir(),
        "{} does not exist: build the Lambdas with `./dev lambdas` (./dev test does it first)",
        dir.display()
    );
    for def in FUNCTIONS {
        let binary_path = dir.join(def.bin).join("bootstrap");
        let zip_path = dir.join(def.bin).join("bootstrap.zip");
        let binary = read(&binary_path);
        let zip = read(&zip_path);
        let shown = binary_path.display().to_string();

        let needs = version_needs(&binary, &shown);
        let glibc: Vec<(u32, u32)> = needs.iter().filter_map(|(_, v)| glibc_version(v)).collect();
        let newest = glibc.iter().max().copied().unwrap_or_else(|| {
            panic!("{shown} requires no GLIBC_x.y version: not a dynamically linked glibc binary?")
        });
        assert!(
            newest <= AL2023_GLIBC,
            "{shown} needs GLIBC_{}.{}, newer than Amazon Linux 2023's {}.{}; build it with `cargo lambda build` (zig)",
            newest.0,
            newest.1,
            AL2023_GLIBC.0,
            AL2023_GLIBC.1
        );

        let entries = zip_entries(&zip, &zip_path.display().to_string());
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["bootstrap"],
            "{} must hold just `bootstrap`",
            zip_path.display()
        );
        let entry = &entries[0];
        assert_eq!(
            (entry.size, entry.crc32),
            (binary.len() as u64, crc32(&binary)),
            "{} does not hold {shown}: rebuild with `./dev lambdas`",
            zip_path.display()
        );
        assert!(
            entry.unix_mode & 0o111 != 0,
            "bootstrap in {} is not executable (mode {:o})",
            zip_path.display(),
            entry.unix_mode
        );

        eprintln!(
            "{:<16} bootstrap {:>8} ({} bytes), bootstrap.zip {:>8} ({} bytes), needs GLIBC <= {}.{}",
            def.bin,
            megabytes(binary.len()),
            binary.len(),
            megabytes(zip.len()),
            zip.len(),
            newest.0,
            newest.1
        );
    }
}

/// The parser above agrees with binutils' `readelf` on the binaries (skipped, saying so, when
/// `readelf` is not installed).
#[test]
fn version_needs_agree_with_readelf() {
    let dir = lambda_dir();
    for def in FUNCTIONS {
        let path = dir.join(def.bin).join("bootstrap");
        let shown = path.display().to_string();
        let ours: std::collections::BTreeSet<String> = version_needs(&read(&path), &shown)
            .into_iter()
            .map(|(_, version)| version)
            .collect();
        let output = match std::process::Command::new("readelf")
            .args(["--version-info", "--wide"])
            .arg(&path)
            .output()
        {
            Ok(output) if output.status.success() => output,
            _ => {
                eprintln!("readelf is not available: cross-check skipped");
                return;
            }
        };
        let text = String::from_utf8_lossy(&output.stdout);
        // Lines of the .gnu.version_r part look like `  0x0010:   Name: GLIBC_2.2.5  Flags: ...`.
        let part = text
            .split("Version needs section")
            .nth(1)
            .unwrap_or_else(|| panic!("readelf shows no version needs for {shown}"));
        let part = part.split(" section '").next().unwrap_or(part);
        let theirs: std::collections::BTreeSet<String> = part
            .lines()
            .filter_map(|line| line.split("Name: ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        assert!(!ours.is_empty(), "{shown}: no version needs found");
        assert_eq!(
            ours, theirs,
            "{shown}: parsed version needs differ from readelf's"
        );
    }
}
