# Prints one statistic in the format chosen with --format (text by default).
format_stat() {
    name=$1
    value=$2
    case "${WORDSTAT_FORMAT:-text}" in
        # Output formats.
        *) printf '%s: %s\n' "$name" "$value" ;;
    esac
}
