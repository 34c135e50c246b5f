Console.WriteLine("QuickStart: the storage engine is not built yet; nothing is measured.");
