# Sourced by scripts/demo.sh and the integration tests' libraries: girder_free_port prints a
# TCP port for a private port mapper or node.
# The port lies below the kernel's ephemeral range, so no outgoing connection of another
# program can take it between the choice and the bind (a random port in that range was taken
# that way now and then), and no socket uses it at the time of the choice (`ss`, when there).
girder_free_port() {
    _gfp_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$_gfp_lo" -gt 12000 ] 2>/dev/null || _gfp_lo=32768
    for _gfp_try in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
        _gfp_p=$((10000 + $(od -An -N2 -tu2 /dev/urandom) % (_gfp_lo - 10000)))
        if ! command -v ss >/dev/null 2>&1; then break; fi
        ss -Htan "( sport = :$_gfp_p )" 2>/dev/null | grep -q . || break
    done
    echo "$_gfp_p"
}
