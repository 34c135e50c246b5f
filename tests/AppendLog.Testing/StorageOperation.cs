namespace AppendLog.Testing;

/// <summary>The simulated operations a fault can be injected into.</summary>
internal enum StorageOperation
{
    /// <summary><c>IDirectFile.Write</c>.</summary>
    Write,

    /// <summary><c>IDirectFile.Read</c>.</summary>
    Read,

    /// <summary><c>IDirectFile.SyncData</c>.</summary>
    SyncData,

    /// <summary><c>IDirectFile.Allocate</c>.</summary>
    Allocate,

    /// <summary><c>IDirectFile.Truncate</c>.</summary>
    Truncate,

    /// <summary><c>IStorage.SyncDirectory</c>.</summary>
    SyncDirectory,

    /// <summary><c>IStorage.RenameFile</c> (hook only: no injected errors).</summary>
    Rename,

    /// <summary><c>IStorage.DeleteFile</c> (hook only: no injected errors).</summary>
    Delete,

    /// <summary><c>IStorage.Open</c> of a file that does not exist yet (creation).</summary>
    Create,

    /// <summary>syncfs(2) through a handle from <see cref="SimulatedStorage.OpenFileSystemSync"/>.</summary>
    SyncFileSystem,
}
