/// A command's options as `--help` lists them and the parser accepts them.
struct OptionSpec {
    let name: String
    let value: String?        // placeholder such as "PATH"; nil for a flag
    let defaultValue: String?
    let help: String

    static func flag(_ name: String, _ help: String) -> OptionSpec { OptionSpec(name: name, value: nil, defaultValue: nil, help: help) }
    static func value(_ name: String, _ value: String, _ defaultValue: String?, _ help: String) -> OptionSpec {
        OptionSpec(name: name, value: value, defaultValue: defaultValue, help: help)
    }
}

struct CommandSpec {
    let name: String
    let summary: String
    let options: [OptionSpec]

    var help: String {
        var lines = ["usage: ctnas \(name) [options]", "", summary, "", "options:"]
        let all = options + [.flag("--help", "show this help")]
        let width = all.map { $0.name.count + ($0.value.map { $0.count + 1 } ?? 0) }.max() ?? 0
        for o in all {
            let left = o.name + (o.value.map { " " + $0 } ?? "")
            var line = "  " + left + String(repeating: " ", count: width - left.count + 2) + o.help
            if let d = o.defaultValue { line += " (default: \(d))" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

/// A usage error: printed as one line, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Parsed options of one command. Values are checked and converted on access.
struct ParsedArguments {
    let command: CommandSpec
    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []

    init(_ command: CommandSpec, _ arguments: [String]) throws {
        self.command = command
        var i = 0
        while i < arguments.count {
            var argument = arguments[i]
            var inlineValue: String?
            if let eq = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                inlineValue = String(argument[argument.index(after: eq)...])
                argument = String(argument[..<eq])
            }
            guard let spec = command.options.first(where: { $0.name == argument }) else {
                if argument == "--help" || argument == "-h" { flags.insert("--help"); i += 1; continue }
                throw UsageError(message: "unknown option '\(argument)' for 'ctnas \(command.name)' (see ctnas \(command.name) --help)")
            }
            if spec.value == nil {
                guard inlineValue == nil else { throw UsageError(message: "option \(argument) takes no value") }
                flags.insert(argument)
                i += 1
            } else if let v = inlineValue {
                values[argument] = v
                i += 1
            } else {
                guard i + 1 < arguments.count, !arguments[i + 1].hasPrefix("--") else {
                    throw UsageError(message: "option \(argument) needs a value (\(spec.value!))")
                }
                values[argument] = arguments[i + 1]
                i += 2
            }
        }
    }

    func has(_ flag: String) -> Bool { flags.contains(flag) }
    /// Every option the user wrote, flags included.
    var givenOptions: [String] { Array(values.keys) + flags.filter { $0 != "--help" } }
    func given(_ name: String) -> Bool { values[name] != nil }

    func string(_ name: String) -> String? {
        values[name] ?? command.options.first { $0.name == name }?.defaultValue
    }

    func int(_ name: String, in range: ClosedRange<Int> = 0...Int.max) throws -> Int? {
        guard let s = string(name) else { return nil }
        guard let v = Int(s), range.contains(v) else {
            throw UsageError(message: "option \(name) expects a whole number in \(range.lowerBound)...\(range.upperBound), got '\(s)'")
        }
        return v
    }

    func double(_ name: String) throws -> Double? {
        guard let s = string(name) else { return nil }
        guard let v = Double(s), v.isFinite else { throw UsageError(message: "option \(name) expects a number, got '\(s)'") }
        return v
    }
}
