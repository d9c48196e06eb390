# bash completion for girder: commands, subcommands, flags and their values, and the node
# names of the cluster in --dir (default ./.girder/cluster). Source it, or install it as
# /usr/share/bash-completion/completions/girder.

_girder_nodes() {
    # bare names from the cluster's state file; no network traffic in a completion
    local dir=$1 f
    f="$dir/cluster"
    [ -r "$f" ] || return 0
    awk -F'\t' '$1 == "node" { split($2, a, "@"); print a[1]; print $2 }' "$f" 2>/dev/null
}

_girder() {
    local cur prev words cword
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local shared="--cookie --timeout --json --dir --proto-dist --ssl-dist-optfile --verbose --help"
    local commands="ping nodes ps info rpc spawn send exit stop top trace cluster term help"

    # the command (and cluster subcommand) is the first word that is not a flag or a value
    local cmd="" sub="" dir=".girder/cluster" i w nargs=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case "$w" in
        --cookie|--timeout|--proto-dist|--ssl-dist-optfile|--sort|--limit|-n|--erlang|--prefix|--module|--interval|--duration|--out|--html|--pid|--name)
            ((i++)) ;;
        --dir)
            ((i++)); dir=${COMP_WORDS[i]} ;;
        -*) ;;
        *)
            if [ -z "$cmd" ]; then cmd=$w
            elif [ "$cmd" = cluster ] && [ -z "$sub" ]; then sub=$w
            else ((nargs++)); fi ;;
        esac
    done

    case "$prev" in
    --sort) COMPREPLY=($(compgen -W "reductions memory mailbox" -- "$cur")); return ;;
    --proto-dist) COMPREPLY=($(compgen -W "inet_tcp inet_tls" -- "$cur")); return ;;
    --dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    --ssl-dist-optfile|--module|--out|--html) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --cookie|--timeout|--limit|-n|--erlang|--prefix|--interval|--duration|--pid|--name) return ;;
    esac

    if [ -z "$cmd" ]; then
        COMPREPLY=($(compgen -W "$commands --help --version $shared" -- "$cur"))
        return
    fi
    local flags=$shared
    case "$cmd" in
    ps) flags="$shared --sort --limit" ;;
    top) flags="$shared --sort --limit --interval --once" ;;
    trace) flags="$shared --duration --out --html --pid --name" ;;
    cluster)
        if [ -z "$sub" ]; then
            COMPREPLY=($(compgen -W "up status down --help" -- "$cur"))
            return
        fi
        case "$sub" in
        up) flags="-n --erlang --prefix --module --cookie --dir --timeout --json --verbose --proto-dist --ssl-dist-optfile --help" ;;
        *) flags="--dir --timeout --json --verbose --help" ;;
        esac
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return ;;
    term)
        COMPREPLY=($(compgen -W "decode encode --help --format --explicit --compressed --deterministic --utf8-atoms" -- "$cur"))
        return ;;
    help)
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [ "$nargs" -eq 0 ] || [ "$cmd" = ping ]; then
        COMPREPLY=($(compgen -W "$(_girder_nodes "$dir")" -- "$cur"))
    fi
}
complete -F _girder girder
