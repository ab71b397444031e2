enum Bench { static let spec = CommandSpec(name: "bench", summary: "Measure speed beside the PyTorch reference figures.", options: []); static func run(_ a: ParsedArguments) throws -> Int32 { 0 } }
