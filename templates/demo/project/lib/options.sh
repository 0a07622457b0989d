# Command-line options. The plan's first task fills this in.
parse_options() {
    WORDSTAT_FILES="$*"
}
