//! `rampartctl explain --file F --src … --dst … --proto … --dport …`: which rule matches a
//! packet under a policy file, and through which group and service.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rampart_classify::{PacketDirection, PacketFields, Ruleset};
use rampart_config::policy::PolicyDocument;

/// Arguments of `explain`.
#[derive(clap::Args)]
pub struct Args {
    /// Policy document to evaluate against.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Source address.
    #[arg(long)]
    pub src: IpAddr,
    /// Destination address.
    #[arg(long)]
    pub dst: IpAddr,
    /// Protocol: tcp, udp, icmp, icmpv6, sctp or a number.
    #[arg(long, default_value = "tcp")]
    pub proto: String,
    /// Source port.
    #[arg(long, default_value_t = 0)]
    pub sport: u16,
    /// Destination port.
    #[arg(long, default_value_t = 0)]
    pub dport: u16,
    /// ICMP type (ICMP/ICMPv6; carried in the source-port field).
    #[arg(long)]
    pub icmp_type: Option<u8>,
    /// ICMP code (carried in the destination-port field).
    #[arg(long)]
    pub icmp_code: Option<u8>,
    /// 802.1Q VLAN id.
    #[arg(long)]
    pub vlan: Option<u16>,
    /// VXLAN VNI.
    #[arg(long)]
    pub vni: Option<u32>,
    /// Direction of the packet: in or out.
    #[arg(long, default_value = "in")]
    pub direction: String,
}

pub fn parse_proto(s: &str) -> anyhow::Result<u8> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        n => n
            .parse()
            .with_context(|| format!("unknown protocol {s:?}"))?,
    })
}

impl Args {
    /// The packet the arguments describe.
    pub fn packet(&self) -> anyhow::Result<PacketFields> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            bail!("--src and --dst must be of the same address family");
        }
        let proto = parse_proto(&self.proto)?;
        let (sport, dport) = match (self.icmp_type, self.icmp_code) {
            (None, None) => (self.sport, self.dport),
            (t, c) => (t.unwrap_or(0) as u16, c.unwrap_or(0) as u16),
        };
        let mut p = PacketFields::from_ips(self.src, self.dst, sport, dport, proto);
        p.vlan = self.vlan;
        p.vni = self.vni;
        p.direction = match self.direction.as_str() {
            "in" => PacketDirection::In,
            "out" => PacketDirection::Out,
            d => bail!("--direction must be in or out, not {d:?}"),
        };
        Ok(p)
    }
}

pub fn run(a: &Args) -> anyhow::Result<ExitCode> {
    let Some(file) = &a.file else {
        bail!("give --file POLICY (explaining against a live node needs that node's control endpoint)");
    };
    let p = a.packet()?;
    let doc =
        PolicyDocument::from_path(file).with_context(|| format!("reading {}", file.display()))?;
    let policy = match doc.validate_standalone() {
        Ok(p) => p,
        Err(errs) => {
            eprintln!("{}: invalid policy:\n{errs}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let rs = Ruleset::compile(&policy)?;
    print!("{}", rs.explain(&p));
    Ok(ExitCode::SUCCESS)
}
