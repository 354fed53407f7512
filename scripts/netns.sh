# Shell helpers (sourced): two namespaces joined only through the appliance.
#   netns_up TAG   -> ${TAG}na (10.99.0.1) --veth-- ${TAG}ha [appliance] ${TAG}hb --veth-- ${TAG}nb (10.99.0.2)
#   netns_down TAG
# Offloads are off on all four veth ends: TCP over af_packet stalls otherwise.

NETNS_IP_A=10.99.0.1
NETNS_IP_B=10.99.0.2

netns_down() {
  local t=$1
  for ns in "${t}na" "${t}nb"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "${t}ha" 2>/dev/null || true
  ip link del "${t}hb" 2>/dev/null || true
}

netns_up() {
  local t=$1 side ns host inner ip
  netns_down "$t"
  for side in a b; do
    ns="${t}n${side}"; host="${t}h${side}"; inner="${t}i${side}"
    if [ "$side" = a ]; then ip=$NETNS_IP_A; else ip=$NETNS_IP_B; fi
    ip netns add "$ns"
    ip link add "$host" type veth peer name "$inner"
    ip link set "$inner" netns "$ns"
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr add "$ip/24" dev "$inner"
    ip netns exec "$ns" ip link set "$inner" up
    ip netns exec "$ns" ethtool -K "$inner" tx off tso off gso off gro off >/dev/null
    ethtool -K "$host" tx off tso off gso off gro off >/dev/null
    sysctl -qw "net.ipv6.conf.${host}.disable_ipv6=1" 2>/dev/null || true
    ip link set "$host" up
  done
}

# af_packet vdev strings for the appliance's two ports
netns_vdev_a() { echo "net_af_packet0,iface=${1}ha,qdisc_bypass=1,framecnt=4096"; }
netns_vdev_b() { echo "net_af_packet1,iface=${1}hb,qdisc_bypass=1,framecnt=4096"; }
