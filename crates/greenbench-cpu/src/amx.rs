//! Intel AMX (Advanced Matrix Extensions): whether this process may use it, and what its
//! kernels share. Eight tile registers of up to 16 rows x 64 bytes; `tdpbusd` (uint8 x int8
//! -> int32, `int8::gemm`'s AMX path) and `tdpbf16ps` (bf16 x bf16 -> fp32, `direct::amx`)
//! multiply a 16 x 64-byte tile of `A` by a tile of `B` in the VNNI layout (pairs or quads of
//! consecutive reduction steps side by side: the layout `vpdpbusd` / `vdpbf16ps` already read).
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are inline assembly; compiled
//! code never touches the tile registers, so their state carries from one `asm!` to the next
//! within a kernel call. Linux hands a process AMX's 8 KB register state only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once here); each kernel call
//! loads its tile configuration, skipped where the thread's tiles hold it already (they stay
//! configured between calls: [`HELD`]).
//!
//! `GREENBENCH_NO_AMX` (any value) turns AMX off, for measuring with and without it.

#![cfg(target_arch = "x86_64")]

use std::arch::asm;
use std::arch::x86_64::{__cpuid, __cpuid_count};
use std::sync::OnceLock;

/// What this process may run: (AMX-INT8, AMX-BF16), each with AMX-TILE, the OS saving the
/// tile state (XCR0 bits 17 and 18) and Linux's permission; both false under
/// `GREENBENCH_NO_AMX`. Asked once per process.
fn granted() -> (bool, bool) {
    static ON: OnceLock<(bool, bool)> = OnceLock::new();
    *ON.get_or_init(|| {
        if std::env::var_os("GREENBENCH_NO_AMX").is_some() {
            return (false, false);
        }
        let leaf7 = __cpuid_count(7, 0);
        let bit = |b: u32| leaf7.edx >> b & 1 == 1;
        let (tile, bf16, int8) = (bit(24), bit(22), bit(25));
        if !(tile && (int8 || bf16) && os_saves_tiles() && request_permission()) {
            return (false, false);
        }
        (int8, bf16)
    })
}

/// Whether AMX-INT8 (`tdpbusd`) runs here.
pub(crate) fn int8() -> bool {
    granted().0
}

/// Whether AMX-BF16 (`tdpbf16ps`) runs here.
pub(crate) fn bf16() -> bool {
    granted().1
}

fn os_saves_tiles() -> bool {
    if __cpuid(1).ecx >> 27 & 1 == 0 {
        return false; // no OSXSAVE: XCR0 unreadable
    }
    let (lo, hi): (u32, u32);
    // SAFETY: OSXSAVE (checked) makes `xgetbv` with ECX = 0 valid.
    unsafe {
        asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    let xcr0 = (hi as u64) << 32 | lo as u64;
    xcr0 & (3 << 17) == 3 << 17
}

#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    const SYS_ARCH_PRCTL: i64 = 158;
    let r: i64;
    // SAFETY: the `arch_prctl` system call with integer arguments; it reads and writes no
    // memory of ours. `syscall` clobbers rcx and r11.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL => r, in("rdi") ARCH_REQ_XCOMP_PERM,
             in("rsi") XFEATURE_XTILEDATA, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

/// The common step of `offsets` when they increase evenly (the rows of one tile load, which
/// takes one stride); `None` for fewer than two or uneven ones.
pub(crate) fn even_step(offsets: &[usize]) -> Option<usize> {
    let d = match offsets {
        [a, b, ..] if b > a => b - a,
        _ => return None,
    };
    offsets
        .windows(2)
        .all(|w| w[1].wrapping_sub(w[0]) == d)
        .then_some(d)
}

/// A 64-byte tile configuration (palette 1): per register, its rows and bytes per row.
#[repr(C, align(64))]
pub(crate) struct Config([u8; 64]);

impl Config {
    /// `shapes[t] = (rows, bytes per row)` of `tmm{t}`; (0, 0) leaves it unconfigured.
    pub(crate) fn new(shapes: [(usize, usize); 8]) -> Config {
        let mut c = [0u8; 64];
        c[0] = 1;
        for (t, &(rows, bytes)) in shapes.iter().enumerate() {
            assert!(rows <= 16 && bytes <= 64, "a tile is at most 16 x 64 bytes");
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&(bytes as u16).to_le_bytes());
            c[48 + t] = rows as u8;
        }
        Config(c)
    }

    /// Load it (`ldtilecfg`), unless this thread's tiles hold it already ([`HELD`]). The
    /// tiles' contents are then whatever the last kernel left: every kernel zeroes or loads a
    /// tile before it reads one.
    ///
    /// # Safety
    /// AMX granted ([`int8`] or [`bf16`]).
    #[inline]
    pub(crate) unsafe fn load(&self) {
        if HELD.get() == Some(self.0) {
            return;
        }
        // SAFETY: the caller's; reads the 64 bytes of `self`.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) };
        HELD.set(Some(self.0));
    }
}

thread_local! {
    /// The configuration this thread's tiles hold (`None` before its first load). A
    /// configuration stays loaded between kernel calls, and loading the one held is skipped:
    /// `ldtilecfg` after `tilerelease` for every reduction block's groups took 3.5 % of
    /// mobilenet-v1-0.25 bf16 (batch 32, one thread: `perf annotate` of
    /// `DirectPlan::unit`, the samples on the instruction after it). No kernel releases the
    /// tiles (`tilerelease`): each loads or zeroes every tile it reads. The cost: a thread
    /// that has run a tile kernel keeps AMX's 8 KB register state in use, which the OS saves
    /// at its context switches.
    static HELD: std::cell::Cell<Option<[u8; 64]>> = const { std::cell::Cell::new(None) };
}

/// `tileloadd tmm{t}, [p + stride]`: rows of the configured width, `stride` bytes apart.
macro_rules! tile_load {
    ($t:literal, $p:expr, $stride:expr) => {
        std::arch::asm!(concat!("tileloadd tmm", $t, ", [{p} + {s}*1]"), p = in(reg) $p,
            s = in(reg) $stride, options(nostack, readonly))
    };
}
/// `tilestored [p + stride], tmm{t}`.
macro_rules! tile_store {
    ($t:literal, $p:expr, $stride:expr) => {
        std::arch::asm!(concat!("tilestored [{p} + {s}*1], tmm", $t), p = in(reg) $p,
            s = in(reg) $stride, options(nostack))
    };
}
/// `tilezero tmm{t}`.
macro_rules! tile_zero {
    ($($t:literal),*) => {
        $(std::arch::asm!(concat!("tilezero tmm", $t), options(nomem, nostack));)*
    };
}
/// A tile product: `$op tmm{c}, tmm{a}, tmm{b}` (`tdpbusd`, `tdpbf16ps`).
macro_rules! tile_dp {
    ($op:literal, $c:literal, $a:literal, $b:literal) => {
        std::arch::asm!(
            concat!($op, " tmm", $c, ", tmm", $a, ", tmm", $b),
            options(nomem, nostack)
        )
    };
}
pub(crate) use {tile_dp, tile_load, tile_store, tile_zero};
