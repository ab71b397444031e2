/// Errors the Engine reports instead of trapping on data it was handed.
public enum EngineError: Error, CustomStringConvertible, Equatable, Sendable {
    case shapeMismatch(String)
    case corrupt(String)
    case unsupportedVersion(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let s): return "shape mismatch: \(s)"
        case .corrupt(let s): return "corrupt data: \(s)"
        case .unsupportedVersion(let s): return "unsupported version: \(s)"
        }
    }
}
