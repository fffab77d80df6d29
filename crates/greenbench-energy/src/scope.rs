//! The domain a meter measures, which decides what discovery may add together.

/// The domain a meter measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole machine's input power (an ACPI power meter): every other domain is inside.
    System,
    /// A system on a chip (an APU's package): the CPU packages and the integrated GPU.
    Soc,
    /// CPU packages and DRAM (RAPL).
    Cpu,
    /// The CPU packages' counters again, through another driver (hwmon `amd_energy`).
    CpuAgain,
    /// One device outside the CPU (a discrete GPU).
    Device,
}

impl Scope {
    pub fn describe(self) -> &'static str {
        match self {
            Scope::System => "the whole system (contains every other domain)",
            Scope::Soc => "a system on a chip (its CPU cores and integrated GPU)",
            Scope::Cpu => "the CPU package or DRAM",
            Scope::CpuAgain => "the CPU package (RAPL's counters, through hwmon)",
            Scope::Device => "one device of its own",
        }
    }
}
