//! Reading and writing another process's memory (`process_vm_readv` / `process_vm_writev`).

use std::io;

fn remote_io(pid: u32, local: &mut [u8], addr: u64, write: bool) -> io::Result<usize> {
    let liov = libc::iovec {
        iov_base: local.as_mut_ptr().cast(),
        iov_len: local.len(),
    };
    let riov = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: local.len(),
    };
    // SAFETY: the local iovec covers exactly `local`, which is live and writable for the call;
    // the remote address is only interpreted by the kernel in the other process's address
    // space, where a bad address yields EFAULT rather than undefined behaviour.
    let n = unsafe {
        if write {
            libc::process_vm_writev(pid as libc::pid_t, &liov, 1, &riov, 1, 0)
        } else {
            libc::process_vm_readv(pid as libc::pid_t, &liov, 1, &riov, 1, 0)
        }
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Read a NUL-terminated string of at most `max` bytes starting at `addr` in `pid`.
///
/// Reads in chunks that never cross a page boundary, so a string that ends just before an
/// unmapped page is still read. Returns ENAMETOOLONG past `max` and EFAULT for a bad address.
pub fn read_cstring(pid: u32, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    const PAGE: u64 = 4096;
    // Most paths are short: read a small first chunk, then whole pages up to `max`. A chunk
    // never crosses a page boundary, so a string ending just before an unmapped page is
    // still read.
    const FIRST: u64 = 256;
    let mut out = Vec::new();
    let mut cur = addr;
    let mut buf = [0u8; PAGE as usize];
    let mut want = FIRST;
    loop {
        let chunk = want.min(PAGE - (cur % PAGE)) as usize;
        let n = remote_io(pid, &mut buf[..chunk], cur, false)?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() > max {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        cur += n as u64;
        want = PAGE;
    }
}

/// Read exactly `len` bytes at `addr` in `pid`.
pub fn read_bytes(pid: u32, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = remote_io(pid, &mut buf, addr, false)?;
    if n != len {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buf)
}

/// Write all of `data` at `addr` in `pid`.
pub fn write_bytes(pid: u32, addr: u64, data: &[u8]) -> io::Result<()> {
    let mut copy = data.to_vec();
    let n = remote_io(pid, &mut copy, addr, true)?;
    if n != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Reinterpret bytes as a plain-old-data libc struct (for tests of the layouts we write).
#[cfg(test)]
pub fn pod_from_bytes<T: Copy>(b: &[u8]) -> T {
    assert_eq!(b.len(), std::mem::size_of::<T>());
    // SAFETY: the length matches and the only types used are libc's plain C structs, for
    // which every bit pattern is valid; read_unaligned copes with the Vec's alignment.
    unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_strings_across_page_boundaries() {
        let me = std::process::id();
        // A string placed so that it straddles a page boundary.
        let mut buf = vec![b'x'; 3 * 4096];
        let base = buf.as_ptr() as u64;
        let start = (4096 - (base % 4096)) as usize + 4096 - 10;
        buf[start + 20] = 0;
        let s = read_cstring(me, base + start as u64, 4096).unwrap();
        assert_eq!(s.len(), 20);
        assert!(read_cstring(me, 8, 4096).is_err(), "address 8 is unmapped");
    }

    #[test]
    fn too_long_is_enametoolong() {
        let me = std::process::id();
        let buf = vec![b'y'; 10_000];
        let err = read_cstring(me, buf.as_ptr() as u64, 4096).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    #[test]
    fn writes_land() {
        let me = std::process::id();
        let target = [0u8; 8];
        write_bytes(me, target.as_ptr() as u64, b"vrift!!\0").unwrap();
        // SAFETY: `target` is a live local array; the volatile read keeps the compiler from
        // assuming it is still zero after the kernel wrote it.
        let got = unsafe { std::ptr::read_volatile(&target) };
        assert_eq!(&got, b"vrift!!\0");
    }
}
